"""Linear programmes min c . y s.t. A y = b, y >= 0, solved by HiGHS.

The bounds solve many small programmes (a component's feasible law, a Charnes-Cooper LP per bound, one per
block of the alternation): the HiGHS model is handed over directly, with the options that
``scipy.optimize.linprog(method="highs")`` passes (dual simplex; presolve on; tolerances 1e-10), without
the argument checking and conversions that ``linprog`` does on each call, which cost more than HiGHS
itself spends on a programme of a few dozen rows; one HiGHS instance per thread is reused. The model goes
through the HiGHS binding that SciPy ships (``scipy.optimize._highspy``, SciPy >= 1.15); where it is
missing, through ``linprog``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

try:  # the HiGHS binding inside SciPy (>= 1.15); not a public module, so linprog stands in without it
    from scipy.optimize._highspy import _core as _highs
except ImportError:  # pragma: no cover - older SciPy
    _highs = None

__all__ = ["LPResult", "solve_lp"]

TOLERANCE = 1e-10  # primal and dual feasibility tolerance of HiGHS
IPM_ROWS = 2_000  # constraint rows from which HiGHS's interior point method (with crossover) beats dual simplex


@dataclass(frozen=True)
class LPResult:
    """``status`` 0 when optimal (then ``x`` and ``fun`` hold the optimum), else HiGHS's ``message``."""

    status: int
    x: np.ndarray | None
    fun: float | None
    message: str


def _options(ipm: bool):
    opts = _highs.HighsOptions()
    opts.output_flag = False
    opts.log_to_console = False
    opts.presolve = "on"
    opts.solver = "ipm" if ipm else "choose"
    opts.simplex_strategy = 1  # dual simplex, as linprog sets it
    opts.primal_feasibility_tolerance = TOLERANCE
    opts.dual_feasibility_tolerance = TOLERANCE
    opts.highs_debug_level = 0
    return opts


_OPTIONS = {ipm: _options(ipm) for ipm in (False, True)} if _highs is not None else {}
_LOCAL = threading.local()  # one HiGHS instance per thread, reused (passModel clears what it held)


def solve_lp(cost: np.ndarray, A: sp.spmatrix, b: np.ndarray) -> LPResult:
    """min cost . y s.t. A y = b, y >= 0, at a vertex: dual simplex, or for a programme of many rows (an
    RLT relaxation's) the interior point method with crossover, several times faster there; with few
    rows (one component's law) dual simplex is the faster."""
    ipm = A.shape[0] > IPM_ROWS
    if _highs is None:  # pragma: no cover - older SciPy
        res = linprog(cost, A_eq=A, b_eq=b, bounds=(0, None), method="highs-ipm" if ipm else "highs",
                      options={"primal_feasibility_tolerance": TOLERANCE, "dual_feasibility_tolerance": TOLERANCE})
        return LPResult(int(res.status), res.x, None if res.fun is None else float(res.fun), str(res.message))
    A = A if isinstance(A, sp.csc_matrix) else sp.csc_matrix(A)
    m, n = A.shape
    lp = _highs.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.full(n, np.inf)
    rhs = np.asarray(b, dtype=np.float64)
    lp.row_lower_, lp.row_upper_ = rhs, rhs
    matrix = lp.a_matrix_
    matrix.format_ = _highs.MatrixFormat.kColwise
    matrix.num_col_, matrix.num_row_ = n, m
    matrix.start_, matrix.index_, matrix.value_ = A.indptr, A.indices, A.data
    h = getattr(_LOCAL, "highs", None)
    if h is None:
        h = _LOCAL.highs = _highs._Highs()
    h.passOptions(_OPTIONS[ipm])
    if h.passModel(lp) == _highs.HighsStatus.kError or h.run() == _highs.HighsStatus.kError:
        status = h.getModelStatus()
        return LPResult(2, None, None, h.modelStatusToString(status))
    status = h.getModelStatus()
    if status != _highs.HighsModelStatus.kOptimal:
        return LPResult(2, None, None, f"model status is {h.modelStatusToString(status)}")
    return LPResult(0, np.asarray(h.getSolution().col_value), float(h.getInfo().objective_function_value), "optimal")

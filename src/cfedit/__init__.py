"""cfedit: causal counterfactual image editing.

The names a README example needs. The light install (graphs, queries, exact SCMs, optimal bounds, worlds'
exact tables) imports no torch; ``ANCM`` and ``neural_bounds`` load on first use and need the ``edit`` extra.
"""

from cfedit.bounds import Bounds, Contrast, empirical_table, extremal_models, optimal_bounds, read_labels_csv
from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query, parse_query
from cfedit.errors import CfeditError
from cfedit.scm import ASCM, SCM, Exogenous, Units
from cfedit.worlds import get_world

__all__ = [
    "ANCM", "ASCM", "SCM", "Atom", "Bounds", "CausalGraph", "CfeditError", "Contrast", "Domains", "Exogenous",
    "Query", "Units", "empirical_table", "extremal_models", "get_world", "neural_bounds", "optimal_bounds",
    "parse_query", "read_labels_csv",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "ANCM":
        from cfedit.editors.ancm import ANCM

        return ANCM
    if name == "neural_bounds":
        from cfedit.bounds.neural import neural_bounds

        return neural_bounds
    raise AttributeError(f"module 'cfedit' has no attribute {name!r}")

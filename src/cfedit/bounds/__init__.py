"""Optimal bounds of feature-level counterfactuals from P(V) and a causal diagram G.

Given G (directed and bidirected edges), the observational table P(V) and a counterfactual query
Q = P(W_{x'} = w | V = v) (any :class:`~cfedit.core.query.Query`, or a :class:`Contrast` such as an ACE),
:func:`optimal_bounds` returns the interval [min_M Q(M), max_M Q(M)] over the models M compatible with G
that reproduce P(V): the yardstick of counterfactual consistency. It works on canonical (response-function)
models, one joint law per C-component, reduces them exactly to the slots the query reads, and solves one
linear-fractional programme (or a certified relaxation where several components multiply). For many queries on
many tables (the bootstrap resamples of a table of labels), :func:`bounds_on_tables` gives the same bounds and
shares the work; :func:`pooled_table` is the table of pooled conditionals that the constraints read.

The docs page "Optimal bounds" (``docs/concepts/bounds.md``) explains the construction, the reductions, the
programmes and when the result is certified; it also maps the submodules.

Examples:
    >>> import numpy as np
    >>> from cfedit.core.graph import CausalGraph
    >>> from cfedit.core.domains import Domains
    >>> from cfedit.core.query import parse_query
    >>> g = CausalGraph.parse("X -> Y")
    >>> dom = Domains({"X": ["0", "1"], "Y": ["0", "1"]})
    >>> p = np.array([[0.3, 0.2], [0.1, 0.4]])  # P(X, Y)
    >>> b = optimal_bounds(parse_query("P(Y[X=1]=1, Y[X=0]=0)", dom), g, dom, p)  # PNS, Tian & Pearl
    >>> round(b.lower, 6), round(b.upper, 6), b.identified, b.certified
    (0.4, 0.6, False, True)
"""

from cfedit.bounds.optimal import (
    Bounds,
    Contrast,
    bounds_on_tables,
    check_compatible,
    count_table,
    empirical_table,
    extremal_models,
    optimal_bounds,
    pooled_table,
    read_labels_csv,
)

__all__ = ["Bounds", "Contrast", "bounds_on_tables", "check_compatible", "count_table", "empirical_table", "extremal_models",
           "optimal_bounds", "pooled_table", "read_labels_csv"]

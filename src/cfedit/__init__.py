"""cfedit: causal counterfactual image editing."""

from cfedit.domains import Domains
from cfedit.errors import CfeditError
from cfedit.graph import CausalGraph
from cfedit.query import Atom, Query, parse_query
from cfedit.scm import ASCM, SCM, Exogenous, Units

__all__ = ["ASCM", "SCM", "Atom", "CausalGraph", "CfeditError", "Domains", "Exogenous", "Query", "Units", "parse_query"]
__version__ = "0.1.0"

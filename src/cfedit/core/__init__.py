"""The bottom layer: causal diagrams, factor domains and counterfactual queries. Imports no torch."""

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.core.query import Atom, Query, parse_query

__all__ = ["Atom", "CausalGraph", "Domains", "Query", "parse_query"]

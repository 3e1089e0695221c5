"""Shared models of the bounds tests: a binary frontdoor SCM and a backdoor-like table."""

from __future__ import annotations

import numpy as np
import pytest

from cfedit.core.domains import Domains
from cfedit.core.graph import CausalGraph
from cfedit.scm import SCM, Exogenous

BIN = ("0", "1")


@pytest.fixture
def frontdoor() -> SCM:
    """D -> C -> B, D <-> B, binary: U (3 states) drives D and B, C flips D with prob. 0.4."""
    g = CausalGraph.parse("D -> C; C -> B; D <-> B")
    dom = Domains({"D": BIN, "C": BIN, "B": BIN})
    exo = [Exogenous("U", (0.3, 0.2, 0.5), ("D", "B")), Exogenous("NC", (0.6, 0.4), ("C",)),
           Exogenous("NB", (0.7, 0.3), ("B",))]
    mech = {
        "D": lambda pa, u: (u["U"] > 0).astype(int),
        "C": lambda pa, u: pa["D"] ^ u["NC"],
        "B": lambda pa, u: (pa["C"] + (u["U"] == 2) + u["NB"]) % 2,
    }
    return SCM(g, dom, exo, mech)


@pytest.fixture
def backdoorish() -> tuple[CausalGraph, Domains, np.ndarray]:
    """D <-> C, D -> B, C -> B with a 3-valued D and a positive random P(V)."""
    g = CausalGraph.parse("D <-> C; D -> B; C -> B")
    dom = Domains({"D": ["0", "1", "2"], "C": ["green", "red"], "B": BIN})
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(12)).reshape(3, 2, 2)
    return g, dom, p

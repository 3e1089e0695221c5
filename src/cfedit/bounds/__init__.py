"""Optimal bounds of feature-level counterfactuals from P(V) and a causal diagram G.

Given G (directed and bidirected edges), the observational table P(V) and a counterfactual query
Q = P(W_{x'} = w | V = v) (any :class:`~cfedit.core.query.Query`, or a :class:`Contrast` such as an ACE),
:func:`optimal_bounds` returns the interval [min_M Q(M), max_M Q(M)] over the models M compatible with G
that reproduce P(V). This is the yardstick of ctf-consistency (DESIGN.md sec. 1).

**Canonical models** (Balke & Pearl 1997; Zhang, Tian & Bareinboim 2022). Every SCM over G has the
same counterfactuals as one in which each factor V_j applies a *response function* r_j: Pa(V_j) -> V_j
and each C-component C draws the tuple (r_j)_{j in C} from a joint law q_C, independently across
components. We call r_j(pa) a *slot*: the value V_j would take were its parents pa. A counterfactual
event is a set of slot tuples, so Q = sum_r prod_C q_C(r_C) 1[event](r) / (same for the evidence).

**Constraints from P(V).** With V_1 < ... < V_n a topological order and C = (c_1 < ... < c_k), the
model reproduces P(V) iff for each member c_t and each value k of
K_t = ({c_1..c_{t-1}} u Pa(c_1..c_t)) minus c_t with P(k) > 0:

    q_C(E_t(k, v)) = P(c_t = v | K_t = k) q_C(E_{t-1}(k)),   E_t = {r : r_{c_s}(pa_{c_s}) = v_{c_s}, s <= t}.

(Induction on t: P^M(v_1..v_i) = prod_C q_C(E_{C, <= i}); K_t contains the Markov blanket of c_t in
G[V^{(c_t)}] (Tian & Pearl 2002), so pooling P(c_t | V^{(c_t - 1)}) over the rest of the prefix is exact
for a compatible P(V) and needs no positivity.) Each constraint is linear in one q_C.

**Reduction** (why a 10-valued digit parent does not blow the programme up). Only slots that the query
can read, or that P(V) constrains, are kept:

* in each world do(x) the query walks G_{bar x} from the factors its atoms name up to their ancestors,
  with a parent fixed to x (intervened) or to the value an atom demands (any other value already makes
  the event false, so slots below it are never read). V_j in two worlds whose actions agree on An(V_j)
  is one variable, so a value demanded in one world holds in the other (under do(C = green) the digit
  is still the factual D = 7);
* slots at parent values of probability zero that the query does not read are unconstrained: dropped;
* take the members of a component in an order compatible with G (the one keeping fewest slots). Each
  constraint on a slot r_{c_k}(pa) of the last member reads P(r_{c_k}(pa) = v | E_k) = P(v | K_k = k)
  for an event E_k of the earlier members' slots, one per key k that agrees with pa. If these events
  are pairwise disjoint (in any two, some earlier member's same slot takes different values; always so
  when K_k = Pa(c_k), e.g. for a one-factor component), drawing each unread slot from P(v | k) on E_k,
  independently of everything else, completes any solution on the read slots: the unread slots are
  dropped with their constraints, exactly. A last member with K_k = Pa(c_k) that the query does not
  read is dropped whole (its slots drawn from P(v | pa)), and the rule repeats on the member before it;
* a slot of the first member that no later member's kept constraint (or conditional law) involves is
  constrained by its marginal alone; unread, it is dropped and drawn from P(v | pa) (X <-> Y, D -> X
  with a 10-valued D: of X's 10 slots only the evidence's digit's stays).

**Lifted laws.** When a component's unread slots attach to the read ones through constraints only
(X <-> Z, D -> X, X -> Z: Z's key holds D, so each of X's 10 slots meets Z's slots in a constraint), its
law is a main block over the read slots plus one block per group of unread slots with the slots their
constraints share, tied by equal marginals: exact for a linear-fractional programme (gluing the blocks
gives a full law with those marginals): with binary X, Z about 10 x 2^3 coordinates instead of 2^12
response types (10 x 2^5 instead of 2^14 when Z has a second binary parent). A
multilinear cluster that needs the RLT relaxation (below) uses whole response types.

In the world queries a Markovian bar B with parents (D, C) keeps 2 of its 20 slots (4 response types
instead of 2^20). :func:`extremal_models` rebuilds the dropped slots this way, so its SCMs reproduce P(V).

**Solving.** An event is enumerated as *branches*: joint values of the variables it involves (V_j in
world do(x); one variable for all worlds whose actions agree on An(V_j)). A branch requires given slots
to take given values, so P(event) = sum over branches of prod_C q_C(the requirements on C's slots), a
multilinear form in the laws q_C. A component whose only kept member is constrained slot by slot (a
one-factor component) is split into groups of slots that some branch reads together: no branch reads
two groups, so independent laws per group are exact (the PNS of colour on bar, with the digit free,
reads 10 pairs of B's 20 slots, not their 2^20 joint). A component is *fixed* for a form when every
fibre along it has the same expectation under all feasible q_C; a random combination of the fibres
decides it (exact with probability one): two feasible laws that disagree prove it free, membership in
the row space of the constraints proves it fixed, otherwise two LPs decide. Fixed components are
contracted with any feasible law; if none remains free the query is identified. Free components that
share a term form clusters, and every term lies in one cluster, so the query is linear-fractional in
the concatenated cluster laws: one Charnes-Cooper LP (a single t shared by the clusters) with
``scipy.optimize.linprog`` (HiGHS). It is exact when every cluster is one component (method ``"lp"``).
A cluster of several components is multilinear (``"multilinear"``). When it enters the query as one
product of events, prod_v P_v(E_v) (every digit's bar with every colour pinned), its range is exactly
[prod_v min, prod_v max], since the laws are independent: one scalar in the LP, exact. Otherwise its
joint law is relaxed to the level-1 reformulation-linearisation (RLT: every conditional law of one
component given the others meets that component's constraints), which gives *valid* but possibly loose
bounds; alternating exact block optimisation from several starts gives values ``attained`` by explicit
models, and the result is ``certified`` when both meet.

The canonical class equals the class of SCMs over G when each C-component is a bidirected clique.
When a component the query reads is not a clique the canonical class can be larger, so the bounds stay
valid but are not certified optimal (unless the interval is a point).

**Tables G cannot produce.** The constraints pool P(c_t | V^{(c_t - 1)}) into P(c_t | K_t). For a table
some model over G produces this is exact, in any member order. A table that breaks G's constraints
(typically an empirical one) is thereby replaced by the table of its pooled conditionals, a projection
that may depend on the member order; when even that admits no model (e.g. the instrumental inequality
fails) :class:`~cfedit.errors.DataError` is raised.

**Modules**, in the order of their dependencies: :mod:`~cfedit.bounds.context` (G, the domains, the
validated P(V)), :mod:`~cfedit.bounds.events` (queries as events, their worlds, evidence checks),
:mod:`~cfedit.bounds.canonical` (the reduced C-components), :mod:`~cfedit.bounds.forms` (events as
branches and multilinear forms), :mod:`~cfedit.bounds.programmes` (fixed components, clusters, the
Charnes-Cooper and RLT programmes, alternation), :mod:`~cfedit.bounds.witnesses` (explicit SCMs) and
:mod:`~cfedit.bounds.optimal` (the public API, re-exported here). :mod:`cfedit.bounds.neural` (neural
bounds, torch) is not imported here; it uses only the internal API that ``context`` and ``events``
declare in their ``__all__``.

Notation: ``q`` -> q_C (law of response types), ``slot`` -> r_j(pa), ``x`` -> the action do(X = x').

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
    check_compatible,
    count_table,
    empirical_table,
    extremal_models,
    optimal_bounds,
    read_labels_csv,
)

__all__ = ["Bounds", "Contrast", "check_compatible", "count_table", "empirical_table", "extremal_models", "optimal_bounds",
           "read_labels_csv"]

"""Counterfactual queries over factors.

An :class:`Atom` is the event ``W_{x} = w``: factor W, in the world where do(X = x) was performed
(``do`` empty: the factual world), takes value w. A :class:`Query` is
P(outcome atoms | given atoms), e.g. the edit of a unit whose factors are v,

    P(B[C=green]=1 | D=7, C=red, B=0)  =  P(B_{C=green} = 1 | D = 7, C = red, B = 0),

or a joint such as ``P(B=0, B[C=green]=1)``. Text is parsed with errors that point at the token.

>>> from cfedit.core.domains import Domains
>>> dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})
>>> q = parse_query("P(B[C=green]=1 | D=7, C=red, B=0)", dom)
>>> q.outcome[0]
Atom(var='B', value=1, do=(('C', 0),))
>>> q.format(dom)
'P(B[C=green]=1 | D=7, C=red, B=0)'

A continuous factor (:class:`~cfedit.core.domains.Continuous`) enters events by comparison (``<``, ``<=``,
``>``, ``>=``) and, in the evidence, by its observed value; its expectation in a world is an
:class:`Expectation`:

>>> from cfedit.core.domains import Continuous
>>> mm = Domains({"T": Continuous(0.5, 7.0), "I": Continuous(64, 255)})
>>> parse_query("P(T[I=200] > 2.5 | T=1.8)", mm).format(mm)
'P(T[I=200]>2.5 | T=1.8)'
>>> e = parse_counterfactual("E[I[T=3] | T=1.5, I=120]", mm)
>>> e.var, e.do, e.format(mm)
('I', (('T', 3.0),), 'E[I[T=3] | T=1.5, I=120]')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from cfedit.core.domains import Domains
from cfedit.core.files import MESSAGE_CHARS, clip
from cfedit.core.intervention import Intervention
from cfedit.errors import CfeditError, QueryError

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z0-9_.+-]+)|(?P<sym><=|>=|[()\[\]|,=<>]))")
_SYMBOLS = ("(", ")", "[", "]", "|", ",", "=", "<", ">", "<=", ">=")
COMPARISONS = ("=", "<", "<=", ">", ">=")
"""The relations an atom can state: ``=`` for any factor, the order relations for continuous ones."""
_BLANK = re.compile(r"\s*")


@dataclass(frozen=True)
class Atom:
    """The event W_{do} = value (integer codes); ``do`` is a sorted tuple of (factor, code).

    ``op`` is the relation: ``=`` (any factor) or ``<``, ``<=``, ``>``, ``>=`` (continuous factors, whose
    values are floats).
    """

    var: str
    value: int | float
    do: tuple[tuple[str, int | float], ...] = ()
    op: str = "="

    def __post_init__(self) -> None:
        object.__setattr__(self, "do", tuple(sorted(dict(self.do).items())))
        if self.op not in COMPARISONS:
            raise QueryError(f"unknown relation {self.op!r}; relations are {' '.join(COMPARISONS)}")

    def __repr__(self) -> str:
        op = "" if self.op == "=" else f", op={self.op!r}"
        return f"Atom(var={self.var!r}, value={self.value!r}, do={self.do!r}{op})"

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Whether the event holds for each value of W (a boolean array)."""
        x = np.asarray(values)
        return {"=": np.equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[self.op](x, self.value)

    @property
    def intervention(self) -> dict[str, int]:
        return dict(self.do)

    def format(self, domains: Domains) -> str:
        """The atom as query text, e.g. ``B[C=green]=1``."""
        world = f"[{domains.format(dict(self.do))}]" if self.do else ""
        return f"{self.var}{world}{self.op}{domains.decode(self.var, self.value)}"


@dataclass(frozen=True)
class Query:
    """P(outcome | given): conjunctions of atoms, possibly from several worlds."""

    outcome: tuple[Atom, ...]
    given: tuple[Atom, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.outcome:
            raise QueryError("a query needs at least one outcome term")
        seen: dict[tuple, int] = {}
        for a in (*self.outcome, *self.given):
            if a.op != "=":
                continue
            if a.var in a.intervention and a.intervention[a.var] != a.value:
                # W_{W=w} = w' with w' != w is an impossible event; reject early with a clear message.
                raise QueryError(
                    f"{a.var} is set to code {a.intervention[a.var]} in its own world but asked to equal code {a.value}"
                )
            key = (a.var, a.do)
            if seen.get(key, a.value) != a.value:
                raise QueryError(f"{a.var} in world do{dict(a.do)} is given two different values")
            seen[key] = a.value

    @property
    def is_edit_form(self) -> bool:
        """True for P(W[X=x']=w, ... | V=v, ...): every outcome in one intervened world, factual evidence.
        This is the form an edit of an image with factors v answers (the certificate's and the evaluation's rows)."""
        worlds = {a.do for a in self.outcome}
        return len(worlds) == 1 and () not in worlds and not any(a.do for a in self.given)

    @property
    def action(self) -> Intervention:
        """x' of a query of the edit form (:attr:`is_edit_form`), as an :class:`Intervention`; a
        :class:`QueryError` for any other query."""
        if not self.is_edit_form:
            raise QueryError("the query is not of the edit form P(W[X=x']=w | V=v): one intervened world in the outcome, "
                             "factual evidence")
        return Intervention(dict(self.outcome[0].do))

    @property
    def worlds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        """The distinct interventions appearing in the query (``()`` is the factual world)."""
        return tuple(dict.fromkeys(a.do for a in (*self.outcome, *self.given)))

    def format(self, domains: Domains) -> str:
        """The query as text, e.g. ``P(B[C=green]=1 | D=7, C=red)``."""
        out = ", ".join(a.format(domains) for a in self.outcome)
        if self.given:
            out += " | " + ", ".join(a.format(domains) for a in self.given)
        return f"P({out})"

    @classmethod
    def edit(cls, do: Mapping[str, int], outcome: Mapping[str, int], given: Mapping[str, int]) -> Query:
        """P(W_{do} = w | V = v): the feature-level counterfactual of editing a unit whose factors are v."""
        d = tuple(do.items())
        return cls(tuple(Atom(k, v, d) for k, v in outcome.items()), tuple(Atom(k, v) for k, v in given.items()))


@dataclass(frozen=True)
class Expectation:
    """E[W_{do} | given]: the mean of continuous factor W in the world do(X = x), given the evidence."""

    var: str
    do: tuple[tuple[str, int | float], ...] = ()
    given: tuple[Atom, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "do", tuple(sorted(dict(self.do).items())))

    @property
    def intervention(self) -> dict[str, int | float]:
        return dict(self.do)

    @property
    def worlds(self) -> tuple[tuple[tuple[str, int | float], ...], ...]:
        return tuple(dict.fromkeys((self.do, *(a.do for a in self.given))))

    def format(self, domains: Domains) -> str:
        world = f"[{domains.format(dict(self.do))}]" if self.do else ""
        given = " | " + ", ".join(a.format(domains) for a in self.given) if self.given else ""
        return f"E[{self.var}{world}{given}]"


def parse_query(text: str, domains: Domains) -> Query:
    """Parse ``P(W[X=x]=w, ... | V=v, ...)``; names and values are checked against ``domains``.

    Values are value names (``D=7`` is the value named 7), never integer codes; a continuous factor's
    values are numbers, compared with ``< <= > >=`` in the outcome. An error points at the offending
    token, showing at most a window of the text around it.

    Args:
        text: e.g. ``"P(B[C=green]=1 | D=7, C=red, B=0)"``; ``B[C=green]`` is B under do(C = green), and
            several atoms (in one world or several) are joined with commas.
        domains: the factors and their value names.

    Returns:
        The :class:`Query` (outcome atoms and evidence atoms, as integer codes).

    Raises:
        QueryError: a malformed query, or an unknown factor or value (the message shows a caret under it).
    """
    tokens = _tokenize(text)
    p = _Parser(text, tokens, domains)
    return p.query()


def parse_counterfactual(text: str, domains: Domains) -> Query | Expectation:
    """A probability ``P(...)`` (:func:`parse_query`) or an expectation ``E[W[X=x] | V=v, ...]``."""
    tokens = _tokenize(text)
    p = _Parser(text, tokens, domains)
    return p.expectation() if tokens and tokens[0][0] == "E" else p.query()


def _tokenize(text: str) -> list[tuple[str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            where = _BLANK.match(text, pos).end()
            if where == len(text):
                break
            raise QueryError(_point(text, where, f"unexpected character {text[where]!r}"))
        start = m.start("name") if m.group("name") else m.start("sym")
        out.append((m.group("name") or m.group("sym"), start))
        pos = m.end()
    return out


def _point(text: str, pos: int, msg: str) -> str:
    """``msg``, then the text with a caret under ``pos``; a long text shows only a window around ``pos``."""
    text = re.sub(r"\s", " ", text)  # one line, each character in its place, so the caret lines up
    if len(text) > MESSAGE_CHARS:
        start = max(0, min(pos - MESSAGE_CHARS // 2, len(text) - MESSAGE_CHARS))
        head = "..." if start > 0 else ""
        tail = "..." if start + MESSAGE_CHARS < len(text) else ""
        text, pos = head + text[start:start + MESSAGE_CHARS] + tail, pos - start + len(head)
    return f"{msg}\n  {text}\n  {' ' * pos}^"


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, int]], domains: Domains):
        self.text, self.tokens, self.dom, self.i = text, tokens, domains, 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def pos(self) -> int:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else len(self.text)

    def fail(self, msg: str) -> QueryError:
        return QueryError(_point(self.text, self.pos(), msg))

    def expect(self, tok: str) -> None:
        if self.peek() != tok:
            got = "end of text" if self.peek() is None else repr(clip(self.peek(), 60))
            raise self.fail(f"expected {tok!r}, found {got}")
        self.i += 1

    def name(self) -> tuple[str, int]:
        tok, pos = (self.tokens[self.i] if self.i < len(self.tokens) else (None, len(self.text)))
        if tok is None or tok in _SYMBOLS:
            raise self.fail("expected a factor name or value")
        self.i += 1
        return tok, pos

    def checked(self, fn, pos: int):
        try:
            return fn()
        except CfeditError as e:
            raise QueryError(_point(self.text, pos, str(e))) from None

    def query(self) -> Query:
        if self.peek() == "E":
            raise self.fail("this is an expectation E[...]; read it with parse_counterfactual")
        self.expect("P")
        self.expect("(")
        outcome = self.atoms(outcome=True)
        given: list[Atom] = []
        if self.peek() == "|":
            self.i += 1
            given = self.atoms()
        self.expect(")")
        if self.peek() is not None:
            raise self.fail("unexpected text after the closing ')'")
        return Query(tuple(outcome), tuple(given))

    def expectation(self) -> Expectation:
        self.expect("E")
        self.expect("[")
        var, vpos = self.name()
        self.checked(lambda: self.dom.check(var), vpos)
        if not self.dom.is_continuous(var):
            raise QueryError(_point(self.text, vpos, f"{clip(var)} is categorical: ask P({clip(var)}=VALUE ...) instead of its mean"))
        do = self.world()
        given: list[Atom] = []
        if self.peek() == "|":
            self.i += 1
            given = self.atoms()
        self.expect("]")
        if self.peek() is not None:
            raise self.fail("unexpected text after the closing ']'")
        return Expectation(var, tuple(do.items()), tuple(given))

    def atoms(self, outcome: bool = False) -> list[Atom]:
        out = [self.atom(outcome)]
        while self.peek() == ",":
            self.i += 1
            out.append(self.atom(outcome))
        return out

    def atom(self, outcome: bool = False) -> Atom:
        var, vpos = self.name()
        self.checked(lambda: self.dom.check(var), vpos)
        do = self.world()
        op, opos = self.peek(), self.pos()
        if op not in COMPARISONS:
            self.expect("=")
        self.i += 1
        continuous = self.dom.is_continuous(var)
        if op != "=" and not continuous:
            raise QueryError(_point(self.text, opos, f"{clip(var)} is categorical: its values have no order; write {clip(var)}=VALUE"))
        if op == "=" and continuous and outcome:
            raise QueryError(_point(self.text, opos, f"{clip(var)} is continuous: the event {clip(var)}=x has probability zero; "
                                                     f"compare with < <= > >=, or ask E[{clip(var)}...]"))
        val, valpos = self.name()
        code = self.checked(lambda: self.dom.code(var, val), valpos)
        return self.checked(lambda: Atom(var, code, tuple(do.items()), op), vpos)

    def world(self) -> dict[str, int | float]:
        """The optional ``[X=x, ...]`` after a factor name."""
        do: dict[str, int | float] = {}
        if self.peek() == "[":
            self.i += 1
            while True:
                x, xpos = self.name()
                self.checked(lambda: self.dom.check(x), xpos)
                self.expect("=")
                val, valpos = self.name()
                if x in do:
                    raise QueryError(_point(self.text, xpos, f"{clip(x)} is intervened on twice"))
                do[x] = self.checked(lambda: self.dom.code(x, val), valpos)
                if self.peek() == ",":
                    self.i += 1
                    continue
                self.expect("]")
                break
        return do

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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cfedit.core.domains import Domains
from cfedit.core.files import MESSAGE_CHARS, clip
from cfedit.errors import CfeditError, QueryError

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z0-9_.+-]+)|(?P<sym>[()\[\]|,=]))")
_BLANK = re.compile(r"\s*")


@dataclass(frozen=True)
class Atom:
    """The event W_{do} = value (integer codes); ``do`` is a sorted tuple of (factor, code)."""

    var: str
    value: int
    do: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "do", tuple(sorted(dict(self.do).items())))

    @property
    def intervention(self) -> dict[str, int]:
        return dict(self.do)

    def format(self, domains: Domains) -> str:
        """The atom as query text, e.g. ``B[C=green]=1``."""
        world = f"[{domains.format(dict(self.do))}]" if self.do else ""
        return f"{self.var}{world}={domains.decode(self.var, self.value)}"


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


def parse_query(text: str, domains: Domains) -> Query:
    """Parse ``P(W[X=x]=w, ... | V=v, ...)``; names and values are checked against ``domains``.

    Values are value names (``D=7`` is the value named 7), never integer codes. An error points at the
    offending token, showing at most a window of the text around it.

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
        if tok is None or tok in "()[]|,=":
            raise self.fail("expected a factor name or value")
        self.i += 1
        return tok, pos

    def checked(self, fn, pos: int):
        try:
            return fn()
        except CfeditError as e:
            raise QueryError(_point(self.text, pos, str(e))) from None

    def query(self) -> Query:
        self.expect("P")
        self.expect("(")
        outcome = self.atoms()
        given: list[Atom] = []
        if self.peek() == "|":
            self.i += 1
            given = self.atoms()
        self.expect(")")
        if self.peek() is not None:
            raise self.fail("unexpected text after the closing ')'")
        return Query(tuple(outcome), tuple(given))

    def atoms(self) -> list[Atom]:
        out = [self.atom()]
        while self.peek() == ",":
            self.i += 1
            out.append(self.atom())
        return out

    def atom(self) -> Atom:
        var, vpos = self.name()
        self.checked(lambda: self.dom.check(var), vpos)
        do: dict[str, int] = {}
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
        self.expect("=")
        val, valpos = self.name()
        code = self.checked(lambda: self.dom.code(var, val), valpos)
        return self.checked(lambda: Atom(var, code, tuple(do.items())), vpos)

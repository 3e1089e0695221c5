"""An intervention do(X = x'): one type, checked once where input enters, carried as integer codes inside.

Input comes as value names (``{"C": "green"}``, ``"C=green, B=1"``, the CLI's ``--do`` items, a JSON body) or,
from Python, as integer codes; :meth:`Intervention.of` checks factor names and values against the domains
and returns an :class:`Intervention`, a read-only mapping factor -> code. Layers below the entry points
(editors, the NCM, bounds) take it as it is.

>>> from cfedit.core.domains import Domains
>>> dom = Domains({"C": ["green", "red"], "B": ["0", "1"]})
>>> x = Intervention.of(dom, "C=red")
>>> dict(x), x.format(dom)
({'C': 1}, 'C=red')
>>> Intervention.of(dom, {"B": "1", "C": 0}) == Intervention({"C": 0, "B": 1})
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from cfedit.core.domains import Domains
from cfedit.errors import DomainError

__all__ = ["Intervention"]


class Intervention(Mapping[str, int | float]):
    """do(X = x') as factor -> integer code, or a number for a continuous factor (an empty one is the null edit).
    Hashable and immutable; two interventions are equal when they set the same factors to the same codes, whatever the order given."""

    __slots__ = ("_codes",)

    def __init__(self, codes: Mapping[str, int] | None = None):
        # codes only (a float for a continuous factor): callers holding names go through Intervention.of(domains, ...)
        self._codes = {str(k): (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in (codes or {}).items()}

    @classmethod
    def of(cls, domains: Domains, spec: Intervention | Mapping[str, object] | str | Iterable[str] | None) -> Intervention:
        """Check ``spec`` against ``domains`` and return it as codes.

        ``spec`` is an :class:`Intervention` (its codes are checked to be in range), a mapping of factor to
        value name or integer code, the text ``"C=green, B=1"``, a list of ``"X=x"`` items (the CLI's
        repeated ``--do``), or None / empty for the null edit. Unknown factors, unknown values and a factor
        set twice raise :class:`~cfedit.errors.DomainError` naming what is valid.
        """
        if spec is None:
            return cls()
        if isinstance(spec, str) or (not isinstance(spec, Mapping) and isinstance(spec, Iterable)):
            items = [spec] if isinstance(spec, str) else list(spec)
            if not any(str(i).strip(" ,") for i in items):
                return cls()
            if not all(isinstance(i, str) for i in items):
                raise DomainError("an intervention is FACTOR=VALUE text or a mapping of factor to value")
            return cls(domains.parse_assignments(items))
        if not isinstance(spec, Mapping):
            raise DomainError(f"an intervention is FACTOR=VALUE text or a mapping of factor to value, not {type(spec).__name__}")
        return cls(domains.encode(spec))

    def __getitem__(self, name: str) -> int | float:
        return self._codes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)

    def __hash__(self) -> int:
        return hash(frozenset(self._codes.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._codes) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Intervention({self._codes})"

    @property
    def factors(self) -> tuple[str, ...]:
        """The intervened factors X, in the order given."""
        return tuple(self._codes)

    def format(self, domains: Domains) -> str:
        """``C=green, B=1``: value names, as the CLI and queries write them (empty for the null edit)."""
        return domains.format(self._codes)

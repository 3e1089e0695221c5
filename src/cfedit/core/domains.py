"""Categorical domains of factors and interventions over them.

Values travel as integer codes; names appear only at the edges (CLI, files, web).

>>> dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})
>>> dom.encode({"C": "green", "D": 7})
{'C': 0, 'D': 7}
>>> dom.parse_assignments("C=red, B=1")
{'C': 1, 'B': 1}
>>> dom.decode("C", 1)
'red'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from cfedit.errors import DomainError

Intervention = Mapping[str, int]
"""An intervention do(X = x) as integer codes, e.g. ``{"C": 0}``; several factors at once allowed."""


class Domains:
    """The ordered factors and the named values of each (``{"C": ("green", "red"), ...}``)."""

    def __init__(self, values: Mapping[str, Iterable[str]]):
        self._values: dict[str, tuple[str, ...]] = {}
        for name, vals in values.items():
            vals = tuple(str(v) for v in vals)
            if len(vals) < 1:
                raise DomainError(f"factor {name!r} has an empty domain")
            if len(set(vals)) != len(vals):
                raise DomainError(f"factor {name!r} lists a value twice: {vals}")
            self._values[name] = vals

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._values)

    def values(self, name: str) -> tuple[str, ...]:
        return self._values[self.check(name)]

    def size(self, name: str) -> int:
        return len(self.values(name))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self._values.values())

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._values.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domains) and self._values == other._values

    def __repr__(self) -> str:
        return f"Domains({self.as_dict()})"

    def check(self, name: str) -> str:
        if name not in self._values:
            raise DomainError(f"unknown factor {name!r}; factors are {', '.join(self._values)}")
        return name

    def code(self, name: str, value: object) -> int:
        """The integer code of ``value`` (a value name, or an integer code, also as text) in ``name``'s domain."""
        vals = self.values(name)
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        if isinstance(value, str):
            v = value.strip()
            if v in vals:
                return vals.index(v)
            if v.isdigit() and int(v) < len(vals):  # an integer code written as text (e.g. from a CSV)
                return int(v)
        elif isinstance(value, (int, np.integer)) and 0 <= int(value) < len(vals):
            return int(value)
        raise DomainError(f"{value!r} is not a value of {name}; valid values are {', '.join(vals)}")

    def decode(self, name: str, code: int) -> str:
        vals = self.values(name)
        if not 0 <= int(code) < len(vals):
            raise DomainError(f"code {code} is out of range for {name} ({len(vals)} values)")
        return vals[int(code)]

    def encode(self, assignment: Mapping[str, object]) -> dict[str, int]:
        """Validate names and values of an assignment or intervention and return integer codes."""
        return {self.check(k): self.code(k, v) for k, v in assignment.items()}

    def parse_assignments(self, text: str | Iterable[str]) -> dict[str, int]:
        """Parse ``"C=green, D=7"`` (or a list of ``"X=x"`` items) into integer codes."""
        items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
        out: dict[str, int] = {}
        for item in (i.strip() for i in items):
            if not item:
                continue
            if "=" not in item:
                raise DomainError(f"cannot read {item!r}: write FACTOR=VALUE, e.g. {self.names[0]}={self.values(self.names[0])[0]}")
            k, v = (s.strip() for s in item.split("=", 1))
            if k in out:
                raise DomainError(f"factor {k!r} is assigned twice in {text!r}")
            out[self.check(k)] = self.code(k, v)
        if not out:
            raise DomainError("empty assignment: write FACTOR=VALUE, several separated by commas")
        return out

    def format(self, assignment: Mapping[str, int]) -> str:
        """``{"C": 0}`` -> ``"C=green"``."""
        return ", ".join(f"{k}={self.decode(k, v)}" for k, v in assignment.items())

    # ------------------------------------------------------------------ joint configurations
    def n_configs(self, names: Iterable[str]) -> int:
        """The number of joint values of ``names`` (1 for none): e.g. the parent configurations of a factor."""
        return int(np.prod([self.size(k) for k in names], dtype=np.int64))

    def config_index(self, names: Iterable[str], values: Mapping[str, object]):
        """The mixed-radix index of the joint value of ``names`` read from ``values`` (first name most
        significant, as ``np.ravel_multi_index``). Works on ints, numpy arrays and torch tensors alike.

        >>> Domains({"D": list("0123456789"), "C": ["g", "r"]}).config_index(["D", "C"], {"D": 7, "C": 1})
        15
        """
        idx = 0
        for k in names:
            v = values[k]
            idx = idx * self.size(k) + (v.long() if hasattr(v, "long") else v)
        return idx

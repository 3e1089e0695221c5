"""Categorical domains of factors and interventions over them.

Values travel as integer codes; names appear only at the edges (CLI, files, web). Text is always read as
a value *name*: ``"0"`` means the value named ``0``, never code 0, so a value that is not a name is refused
with the list of names (a CSV whose X takes values 1 and 2 cannot read ``X=0`` as the value 1). There is no
text spelling of a code. Python and numpy *integers* are codes (``{"C": 0}``, an int array of labels).

>>> dom = Domains({"D": [str(d) for d in range(10)], "C": ["green", "red"], "B": ["0", "1"]})
>>> dom.encode({"C": "green", "D": 7})
{'C': 0, 'D': 7}
>>> dom.parse_assignments("C=red, B=1")
{'C': 1, 'B': 1}
>>> dom.decode("C", 1)
'red'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

from cfedit.core.files import clip
from cfedit.errors import DomainError

Intervention = Mapping[str, int]
"""An intervention do(X = x) as integer codes, e.g. ``{"C": 0}``; several factors at once allowed."""

VALUE_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,100}")
"""A value name: 1-100 ASCII letters, digits and ``_ . + -`` (what queries and ``X=x`` items can spell)."""


class Domains:
    """The ordered factors and the named values of each (``{"C": ("green", "red"), ...}``).

    Value names follow :data:`VALUE_NAME`, so every value can be written in a query or a ``--do`` item.
    """

    def __init__(self, values: Mapping[str, Iterable[str]]):
        self._values: dict[str, tuple[str, ...]] = {}
        self._index: dict[str, dict[str, int]] = {}
        for name, vals in values.items():
            vals = tuple(str(v) for v in vals)
            if len(vals) < 1:
                raise DomainError(f"factor {clip(name)!r} has an empty domain")
            for v in vals:
                check_value_name(name, v)
            index: dict[str, int] = {}
            for i, v in enumerate(vals):
                if index.setdefault(v, i) != i:
                    raise DomainError(f"factor {clip(name)!r} lists the value {v!r} twice")
            self._values[name] = vals
            self._index[name] = index

    @property
    def names(self) -> tuple[str, ...]:
        """The factors, in order (the axes of every P(V) table)."""
        return tuple(self._values)

    def values(self, name: str) -> tuple[str, ...]:
        """The value names of factor ``name``, in code order."""
        return self._values[self.check(name)]

    def size(self, name: str) -> int:
        """How many values factor ``name`` has."""
        return len(self.values(name))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self._values.values())

    def as_dict(self) -> dict[str, list[str]]:
        """factor -> list of value names (the JSON form)."""
        return {k: list(v) for k, v in self._values.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domains) and self._values == other._values

    def __repr__(self) -> str:
        return f"Domains({self.as_dict()})"

    def check(self, name: str) -> str:
        """``name`` if it is a factor, else a :class:`~cfedit.errors.DomainError` listing the factors."""
        if not isinstance(name, str) or name not in self._values:
            raise DomainError(f"unknown factor {clip(name)!r}; factors are {clip(', '.join(self._values))}")
        return name

    def code(self, name: str, value: object) -> int:
        """The integer code of ``value`` in ``name``'s domain.

        Text (``str``) must be one of the value names, surrounding blanks aside: ``"7"`` is the value
        named 7, never code 7. A Python or numpy integer (or bool) is a code, 0 <= code < size. Anything
        else is refused with the list of value names.
        """
        vals = self.values(name)
        if isinstance(value, str):
            code = self._index[name].get(value.strip())
            if code is not None:
                return code
            raise DomainError(f"{clip(value)!r} is not a value of {name}; valid values are {clip(', '.join(vals))}")
        if isinstance(value, (bool, np.bool_, int, np.integer)):
            if 0 <= int(value) < len(vals):
                return int(value)
            raise DomainError(f"code {value} is out of range for {name}; valid values are {clip(', '.join(vals))} "
                              f"(codes 0 to {len(vals) - 1})")
        raise DomainError(f"{clip(repr(value))} is not a value of {name}: give a value name "
                          f"({clip(', '.join(vals))}) or an integer code")

    def decode(self, name: str, code: int) -> str:
        """The name of ``code`` in ``name``'s domain."""
        vals = self.values(name)
        if not 0 <= int(code) < len(vals):
            raise DomainError(f"code {code} is out of range for {name} ({len(vals)} values)")
        return vals[int(code)]

    def codes(self, name: str, values: object) -> np.ndarray:
        """The int64 codes of many values of ``name``: an integer array (checked in one pass) or items that
        each keep their own type (a list ``["red", 1]`` is a name and a code; numpy would make both text).
        A bad item is named by its position."""
        self.check(name)
        if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
            arr = np.atleast_1d(values)
            if arr.ndim != 1:
                raise DomainError(f"the values of {name} must be one-dimensional, got shape {arr.shape}")
            bad = (arr < 0) | (arr >= self.size(name))
            if bad.any():
                raise DomainError(f"item {int(np.argmax(bad))}: code {arr[bad][0]} is out of range for {name} "
                                  f"({self.size(name)} values)")
            return arr.astype(np.int64)
        if isinstance(values, np.ndarray):
            items = np.atleast_1d(values).tolist()
        elif isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            items = [values]
        else:
            items = list(values)
        out = np.empty(len(items), dtype=np.int64)
        for i, x in enumerate(items):
            try:
                out[i] = self.code(name, x)
            except DomainError as e:
                raise DomainError(f"item {i}: {e}") from None
        return out

    def encode(self, assignment: Mapping[str, object]) -> dict[str, int]:
        """Validate names and values of an assignment or intervention and return integer codes."""
        return {self.check(k): self.code(k, v) for k, v in assignment.items()}

    def parse_assignments(self, text: str | Iterable[str]) -> dict[str, int]:
        """Parse ``"C=green, D=7"`` (or a list of ``"X=x"`` items) into integer codes; values are names."""
        items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
        out: dict[str, int] = {}
        for item in (i.strip() for i in items):
            if not item:
                continue
            if "=" not in item:
                raise DomainError(f"cannot read {clip(item)!r}: write FACTOR=VALUE, e.g. {self.names[0]}={self.values(self.names[0])[0]}")
            k, v = (s.strip() for s in item.split("=", 1))
            if k in out:
                raise DomainError(f"factor {clip(k)!r} is assigned twice")
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


def check_value_name(factor: str, value: str) -> str:
    """``value`` if it is a valid value name of ``factor`` (:data:`VALUE_NAME`), else a :class:`DomainError`."""
    if not VALUE_NAME.fullmatch(value):
        why = "is empty" if not value else ("is longer than 100 characters" if len(value) > 100 else
                                             "has characters other than ASCII letters, digits and _ . + -")
        raise DomainError(f"value {clip(value, 60)!r} of {clip(factor)} {why}: value names must be "
                          "written in queries and FACTOR=VALUE items")
    return value

"""Domains of factors (categorical or continuous) and interventions over them.

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

A factor can instead be *continuous*: a real interval, optionally with declared bins (for binned events and
bounds). Its values are floats in the interval, spelled as numbers in text:

>>> mix = Domains({"D": [str(d) for d in range(10)], "T": Continuous(1.5, 6.5, bins=(2.0, 3.0))})
>>> mix.parse_assignments("D=7, T=2.25")
{'D': 7, 'T': 2.25}
>>> mix.bin("T", [1.7, 2.0, 2.5, 6.5]).tolist(), mix.continuous("T").bin_names
([0, 0, 1, 2], ('1.5-2', '2-3', '3-6.5'))
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from cfedit.core.files import clip
from cfedit.errors import DomainError

Intervention = Mapping[str, int]
"""An intervention do(X = x) as integer codes, e.g. ``{"C": 0}``; several factors at once allowed (a
continuous factor's value is a float)."""

VALUE_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,100}")
"""A value name: 1-100 ASCII letters, digits and ``_ . + -`` (what queries and ``X=x`` items can spell)."""


@dataclass(frozen=True)
class Continuous:
    """A continuous factor's domain: the interval [lo, hi] and optional inner bin edges lo < e1 < ... < hi.

    The bins are [lo, e1], (e1, e2], ..., (ek, hi]: right-closed, the first one closed at lo too. Without
    declared edges the interval is one bin.
    """

    lo: float
    hi: float
    bins: tuple[float, ...] = ()  # inner bin edges, increasing, strictly inside (lo, hi)

    def __post_init__(self) -> None:
        try:
            lo, hi, edges = float(self.lo), float(self.hi), tuple(float(e) for e in self.bins)
        except (TypeError, ValueError):
            raise DomainError(f"a continuous domain needs numbers: lo={self.lo!r}, hi={self.hi!r}, bins={self.bins!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise DomainError(f"a continuous domain needs finite lo < hi, got [{lo:g}, {hi:g}]")
        full = (lo, *edges, hi)
        if any(not math.isfinite(e) for e in edges) or any(a >= b for a, b in zip(full, full[1:])):
            raise DomainError(f"bin edges must increase strictly inside ({lo:g}, {hi:g}), got {list(edges)}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "bins", edges)

    @property
    def edges(self) -> tuple[float, ...]:
        """All bin edges, lo and hi included."""
        return (self.lo, *self.bins, self.hi)

    @property
    def n_bins(self) -> int:
        return len(self.bins) + 1

    @property
    def bin_names(self) -> tuple[str, ...]:
        """``"lo-hi"`` of each bin, value names of the binned categorical factor."""
        e = self.edges
        return tuple(f"{_num(a)}-{_num(b)}" for a, b in zip(e, e[1:]))

    def standardise(self, x):
        """The position of ``x`` in the interval on [-1, 1] (lo -> -1, hi -> 1): how networks take a continuous
        value as an input. Elementwise on floats, numpy arrays and torch tensors alike."""
        return 2.0 * (x - self.lo) / (self.hi - self.lo) - 1.0

    def unstandardise(self, s):
        """The inverse of :meth:`standardise`."""
        return self.lo + (s + 1.0) * (self.hi - self.lo) / 2.0

    def bin(self, x) -> np.ndarray:
        """The bin index of each value (values outside [lo, hi] go to the nearest end bin)."""
        return np.searchsorted(np.asarray(self.bins), np.asarray(x, dtype=float), side="left").astype(np.int64)

    def as_dict(self) -> dict[str, list[float]]:
        return {"range": [self.lo, self.hi], "bins": list(self.bins)}

    @classmethod
    def from_dict(cls, spec: Mapping[str, object]) -> Continuous:
        """Inverse of :meth:`as_dict`: ``{"range": [lo, hi], "bins": [...]}``."""
        rng = spec.get("range")
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise DomainError(f"a continuous domain is written {{'range': [lo, hi], 'bins': [...]}}, got {clip(repr(spec))}")
        return cls(rng[0], rng[1], tuple(spec.get("bins") or ()))


def _num(x: float) -> str:
    """A number as a value name: ``2.0`` -> ``"2"``, ``2.25`` -> ``"2.25"``."""
    return f"{x:g}"


class Domains:
    """The ordered factors and the named values of each (``{"C": ("green", "red"), ...}``).

    Value names follow :data:`VALUE_NAME`, so every value can be written in a query or a ``--do`` item.
    A factor given a :class:`Continuous` (or its ``as_dict`` form) is continuous: its values are floats
    in its interval, and the methods that list or count values (``values``, ``size``, ``shape``, the
    joint-configuration helpers) refuse it with a :class:`DomainError`.
    """

    def __init__(self, values: Mapping[str, Iterable[str] | Continuous | Mapping[str, object]]):
        self._values: dict[str, tuple[str, ...]] = {}
        self._index: dict[str, dict[str, int]] = {}
        self._continuous: dict[str, Continuous] = {}
        self._order: list[str] = []
        for name, vals in values.items():
            self._order.append(name)
            if isinstance(vals, Mapping):
                vals = Continuous.from_dict(vals)
            if isinstance(vals, Continuous):
                if not isinstance(name, str) or not VALUE_NAME.fullmatch(name):
                    raise DomainError(f"factor name {clip(str(name))!r} must be 1-100 ASCII letters, digits and _ . + -")
                self._continuous[name] = vals
                continue
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
        return tuple(self._order)

    def values(self, name: str) -> tuple[str, ...]:
        """The value names of categorical factor ``name``, in code order."""
        return self._values[self._categorical(name)]

    # ------------------------------------------------------------------ continuous factors
    def is_continuous(self, name: str) -> bool:
        """Whether factor ``name`` is continuous (a real value with declared bins)."""
        return self.check(name) in self._continuous

    @property
    def continuous_names(self) -> tuple[str, ...]:
        return tuple(k for k in self._order if k in self._continuous)

    @property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(k for k in self._order if k in self._values)

    def continuous(self, name: str) -> Continuous:
        """The interval (and bins) of a continuous factor."""
        if not self.is_continuous(name):
            raise DomainError(f"{name} is categorical ({clip(', '.join(self._values[name]))}), not continuous")
        return self._continuous[name]

    def bin(self, name: str, values) -> np.ndarray:
        """The declared bin of each value of continuous factor ``name`` (int64 codes of :meth:`binned`)."""
        return self.continuous(name).bin(values)

    def binned(self) -> Domains:
        """The categorical domains in which each continuous factor is replaced by its declared bins."""
        return Domains({k: (self._continuous[k].bin_names if k in self._continuous else self._values[k]) for k in self._order})

    def _categorical(self, name: str) -> str:
        if self.check(name) in self._continuous:
            c = self._continuous[name]
            raise DomainError(f"{name} is continuous (a real value in [{_num(c.lo)}, {_num(c.hi)}]); it has no list of "
                              "values (its declared bins are in binned())")
        return name

    def size(self, name: str) -> int:
        """How many values factor ``name`` has."""
        return len(self.values(name))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.size(k) for k in self._order)

    def as_dict(self) -> dict[str, list[str] | dict[str, list[float]]]:
        """Categorical factors as lists of value names, continuous ones as ``{"range": [lo, hi], "bins": [...]}``;
        ``Domains(d.as_dict()) == d``."""
        return {k: (self._continuous[k].as_dict() if k in self._continuous else list(self._values[k])) for k in self._order}

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in self._continuous

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Domains) and self._values == other._values and self._continuous == other._continuous
                and self._order == other._order)

    def __repr__(self) -> str:
        return f"Domains({self.as_dict()})"

    def check(self, name: str) -> str:
        """``name`` if it is a factor, else a :class:`~cfedit.errors.DomainError` listing the factors."""
        if not isinstance(name, str) or name not in self:
            raise DomainError(f"unknown factor {clip(name)!r}; factors are {clip(', '.join(self._order))}")
        return name

    def code(self, name: str, value: object) -> int:
        """The integer code of ``value`` in ``name``'s domain.

        Text (``str``) must be one of the value names, surrounding blanks aside: ``"7"`` is the value
        named 7, never code 7. A Python or numpy integer (or bool) is a code, 0 <= code < size. Anything
        else is refused with the list of value names.

        For a continuous factor the value is a real number in its interval (text is read as a number) and
        comes back as a float.
        """
        if self.is_continuous(name):
            return self._real(name, value)
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

    def _real(self, name: str, value: object) -> float:
        c = self._continuous[name]
        where = f"{name} is continuous: give a number in [{_num(c.lo)}, {_num(c.hi)}]"
        if isinstance(value, (bool, np.bool_)):
            raise DomainError(f"{where}, got {value!r}")
        if isinstance(value, str):
            try:
                x = float(value.strip())
            except ValueError:
                raise DomainError(f"{where}, got {clip(value)!r}") from None
        elif isinstance(value, (int, float, np.integer, np.floating)):
            try:
                x = float(value)
            except OverflowError:  # an integer beyond any float
                raise DomainError(f"{clip(str(value), 40)} is outside the range of {name}: give a number in "
                                  f"[{_num(c.lo)}, {_num(c.hi)}]") from None
        else:
            raise DomainError(f"{where}, got {clip(repr(value))}")
        if not c.lo <= x <= c.hi:  # also refuses nan
            raise DomainError(f"{x:g} is outside the range of {name}: give a number in [{_num(c.lo)}, {_num(c.hi)}]")
        return x

    def decode(self, name: str, code: int) -> str:
        """The name of ``code`` in ``name``'s domain (a continuous factor's value as a number)."""
        if self.is_continuous(name):
            return _num(float(code))
        vals = self.values(name)
        if not 0 <= int(code) < len(vals):
            raise DomainError(f"code {code} is out of range for {name} ({len(vals)} values)")
        return vals[int(code)]

    def codes(self, name: str, values: object) -> np.ndarray:
        """The int64 codes of many values of ``name``: an integer array (checked in one pass) or items that
        each keep their own type (a list ``["red", 1]`` is a name and a code; numpy would make both text).
        A bad item is named by its position. A continuous factor's values come back as float64."""
        if self.is_continuous(name):
            return self._reals(name, values)
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

    def _reals(self, name: str, values: object) -> np.ndarray:
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            arr = np.atleast_1d(values).astype(np.float64)
            if arr.ndim != 1:
                raise DomainError(f"the values of {name} must be one-dimensional, got shape {arr.shape}")
            c = self._continuous[name]
            bad = ~((arr >= c.lo) & (arr <= c.hi))
            if bad.any():
                raise DomainError(f"item {int(np.argmax(bad))}: {arr[bad][0]:g} is outside the range of {name} "
                                  f"[{_num(c.lo)}, {_num(c.hi)}]")
            return arr
        items = [values] if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) else list(values)
        out = np.empty(len(items))
        for i, x in enumerate(items):
            try:
                out[i] = self._real(name, x)
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
                raise DomainError(f"cannot read {clip(item)!r}: write FACTOR=VALUE, e.g. {self._example(self.names[0])}")
            k, v = (s.strip() for s in item.split("=", 1))
            if k in out:
                raise DomainError(f"factor {clip(k)!r} is assigned twice")
            out[self.check(k)] = self.code(k, v)
        if not out:
            raise DomainError("empty assignment: write FACTOR=VALUE, several separated by commas")
        return out

    def _example(self, name: str) -> str:
        return f"{name}={_num(self._continuous[name].lo) if name in self._continuous else self._values[name][0]}"

    def format(self, assignment: Mapping[str, int]) -> str:
        """``{"C": 0}`` -> ``"C=green"``."""
        return ", ".join(f"{k}={self.decode(k, v)}" for k, v in assignment.items())

    # ------------------------------------------------------------------ joint configurations
    def n_configs(self, names: Iterable[str]) -> int:
        """The number of joint values of ``names`` (1 for none): e.g. the parent configurations of a factor."""
        return int(np.prod([self.size(k) for k in names], dtype=np.int64))  # size() refuses continuous factors

    def config_index(self, names: Iterable[str], values: Mapping[str, object]):
        """The mixed-radix index of the joint value of ``names`` read from ``values`` (first name most
        significant, as ``np.ravel_multi_index``). Works on ints, numpy arrays and torch tensors alike.

        >>> Domains({"D": list("0123456789"), "C": ["g", "r"]}).config_index(["D", "C"], {"D": 7, "C": 1})
        15
        """
        idx = 0
        for k in names:
            self._categorical(k)
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

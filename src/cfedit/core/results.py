"""Typed results: a frozen dataclass whose fields are what was measured, with a strict-JSON form.

A :class:`Result` subclass (as diffusers' ``BaseOutput``) names each measured quantity by a field; a
parameter of the measurement is a field beside it (``composition_error`` and ``composition_steps``), never
part of a key. :meth:`Result.to_json` gives plain JSON values: nested results become objects, tuples become
lists, and a float that is not finite (NaN, an unknown or untested value; an infinite interval end) becomes
``null``, so that ``json.dumps(..., allow_nan=False)`` always succeeds. :meth:`Result.from_json` reads that
form back, driven by the field types (``null`` in a ``float`` field is read as NaN).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

import numpy as np

from cfedit.errors import CfeditError

R = TypeVar("R", bound="Result")


def json_number(x: float | None) -> float | None:
    """A float for strict JSON: None for None, NaN and +-inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _to_json(value: Any) -> Any:
    if isinstance(value, Result):
        return value.to_json()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return json_number(float(value))
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _from_json(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _from_json(rest[0], value, where)
        for a in rest:  # e.g. float | str: the first that reads
            try:
                return _from_json(a, value, where)
            except CfeditError:
                continue
        raise CfeditError(f"{where}: unreadable value {str(value)[:40]!r}")
    if tp is Any:
        return value
    if isinstance(tp, type) and issubclass(tp, Result):
        return tp.from_json(value, where)
    if tp is float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CfeditError(f"{where}: expected a number, got {str(value)[:40]!r}")
        return float(value)
    if tp in (int, bool, str):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise CfeditError(f"{where}: expected {tp.__name__}, got {str(value)[:40]!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise CfeditError(f"{where}: expected a list, got {str(value)[:40]!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise CfeditError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_from_json(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise CfeditError(f"{where}: expected an object, got {str(value)[:40]!r}")
        vt = args[1] if args else Any
        return {k: _from_json(vt, v, f"{where}.{k}") for k, v in value.items()}
    raise TypeError(f"{where}: no JSON reading for the type {tp!r}")


class Result:
    """Base of frozen result dataclasses: :meth:`to_json` and :meth:`from_json` (module docstring)."""

    def to_json(self) -> dict:
        """The fields as strict-JSON values (non-finite floats as ``null``)."""
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], data: Any, where: str | None = None) -> R:
        """The result that :meth:`to_json` wrote; a missing field, an unknown one or a value of the wrong
        type is a :class:`~cfedit.errors.CfeditError` naming where it is."""
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise CfeditError(f"{where}: expected an object, got {str(data)[:40]!r}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise CfeditError(f"{where}: unknown field(s) {', '.join(unknown)[:200]}")
        kw = {}
        for name, f in fields.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise CfeditError(f"{where}: missing field {name!r}")
                continue
            kw[name] = _from_json(hints[name], data[name], f"{where}.{name}")
        return cls(**kw)

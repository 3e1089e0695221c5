"""Checks shared by the frozen config dataclasses: each declares the range of its numbers, and a value out of
range (from Python, a TOML file or config.json) is a :class:`~cfedit.errors.CfeditError` naming it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from cfedit.errors import CfeditError


def check_ranges(config: object, ranges: Mapping[str, tuple[type, float, float]]) -> None:
    """``ranges``: field -> (int or float, least, most), inclusive. Booleans are not numbers here."""
    kind = type(config).__name__
    for name, (typ, lo, hi) in ranges.items():
        value = getattr(config, name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (typ is float or isinstance(value, int))
        if not ok or not math.isfinite(value) or not lo <= value <= hi:
            what = "an integer" if typ is int else "a number"
            raise CfeditError(f"{kind}.{name} must be {what} from {lo:g} to {hi:g}, got {str(value)[:40]!r}")


def check_choice(config: object, name: str, choices: Iterable[str]) -> None:
    value, choices = getattr(config, name), tuple(choices)
    if value not in choices:
        raise CfeditError(f"{type(config).__name__}.{name} must be one of {', '.join(choices)}, got {str(value)[:40]!r}")

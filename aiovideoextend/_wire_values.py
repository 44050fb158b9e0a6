"""Loose JSON values as the wire sends them: numbers that may be strings, texts that may be
error objects."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["number", "text"]


def number(value: Any) -> float | None:
    """A finite float from a JSON number or a numeric string like "50%"; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def text(value: Any) -> str | None:
    if value is None:  # the common case, before the slow Mapping check
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        # "Failed jobs include an `error` object" [GEN]: take its message.
        for key in ("message", "error", "detail"):
            if isinstance(value.get(key), str):
                return str(value[key])
    if value is None or isinstance(value, bool):
        return None
    try:
        return str(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return None

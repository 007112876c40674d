"""Field checks shared by the topic parsers. Each raises :class:`FieldError` with a reject code.

JSON numbers arrive as int or float; Python's bool is an int, so booleans are refused
where a number is expected. Strings may not hold NUL (PostgreSQL text cannot store it).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

# Device clocks that run ahead by more than this are wrong, not early.
MAX_FUTURE = timedelta(minutes=10)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TEXT = 200


class FieldError(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def number(
    obj: dict[str, Any], key: str, lo: float, hi: float, *, required: bool = False
) -> float | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise FieldError("missing_field", f"{key} is required")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FieldError("wrong_type", f"{key} must be a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or not lo <= f <= hi:
        raise FieldError("out_of_range", f"{key}={v!r} outside [{lo}, {hi}]")
    return f


def integer(obj: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise FieldError("wrong_type", f"{key} must be an integer")
    if not lo <= v <= hi:
        raise FieldError("out_of_range", f"{key}={v} outside [{lo}, {hi}]")
    return v


def text(
    obj: dict[str, Any], key: str, *, required: bool = False, choices: frozenset[str] | None = None
) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise FieldError("missing_field", f"{key} is required")
        return None
    if not isinstance(v, str):
        raise FieldError("wrong_type", f"{key} must be a string")
    check_text(key, v)
    if choices is not None and v not in choices:
        raise FieldError("out_of_range", f"{key}={v!r} is not one of {sorted(choices)}")
    return v


def check_text(key: str, v: str) -> None:
    if not v or len(v) > MAX_TEXT:
        raise FieldError("out_of_range", f"{key} must have 1..{MAX_TEXT} characters")
    if "\x00" in v:
        raise FieldError("wrong_type", f"{key} contains NUL")


def boolean(obj: dict[str, Any], key: str) -> bool | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise FieldError("wrong_type", f"{key} must be true or false")
    return v


def timestamp(obj: dict[str, Any], received_at: datetime, key: str = "ts") -> datetime:
    """RFC 3339 with an offset, or epoch milliseconds; not before 2000, not in the future."""
    v = obj.get(key)
    if v is None:
        raise FieldError("missing_field", f"{key} is required")
    if isinstance(v, bool):
        raise FieldError("wrong_type", f"{key} must be RFC 3339 text or epoch milliseconds")
    if isinstance(v, int | float):
        if not math.isfinite(v) or abs(v) > 1e15:
            raise FieldError("bad_timestamp", f"{key}={v!r} is not epoch milliseconds")
        ts = datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=v)
    elif isinstance(v, str):
        ts = parse_rfc3339(key, v)
    else:
        raise FieldError("wrong_type", f"{key} must be RFC 3339 text or epoch milliseconds")
    return check_time(key, ts, received_at)


def check_time(key: str, ts: datetime, received_at: datetime) -> datetime:
    if ts < EARLIEST:
        raise FieldError("bad_timestamp", f"{key}={ts.isoformat()} is before 2000")
    if ts > received_at + MAX_FUTURE:
        raise FieldError("bad_timestamp", f"{key}={ts.isoformat()} is in the future")
    return ts


def parse_rfc3339(key: str, v: str) -> datetime:
    # RFC 3339 requires a 'T' (or space) separator, seconds and an offset.
    if len(v) < 20 or len(v) > 40 or v[10] not in "Tt " or v[4] != "-" or v[7] != "-":
        raise FieldError("bad_timestamp", f"{key}={v[:40]!r} is not RFC 3339")
    try:
        ts = datetime.fromisoformat(v[:-1] + "+00:00" if v[-1] in "Zz" else v)
    except ValueError as e:
        raise FieldError("bad_timestamp", f"{key}={v[:40]!r} is not RFC 3339") from e
    if ts.tzinfo is None:
        raise FieldError("bad_timestamp", f"{key}={v[:40]!r} has no UTC offset")
    return ts.astimezone(UTC)

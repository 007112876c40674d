r"""Field checks shared by the topic parsers. Each raises :class:`FieldError` with a reject code.

JSON numbers arrive as int or float; Python's bool is an int, so booleans are refused
where a number is expected. Strings must be Unicode scalar values without NUL: Python's
json module decodes an escaped lone surrogate (``"\ud800"``) and ``"\u0000"`` into a str
that PostgreSQL cannot store, so the parser refuses them instead of the database driver.
Every time must lie in a :class:`TimeWindow` (retention in the past, a small skew ahead).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings

# Nothing is older than this, even when retention is 0 (= keep forever).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TEXT = 200
# Smallest normal magnitude of a 32-bit float: PostgreSQL's `real` refuses a value that
# would round to 0 ("out of range for type real"), so such values are stored as 0.
REAL_MIN = 1.1754943508222875e-38
_NOT_SCALAR = re.compile("[\x00\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]{1,40}\Z")


class FieldError(ValueError):
    """A message field is invalid; ``code`` is the stable reject reason that metrics count."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """What the ingestor accepts. ``mebuku ingest`` uses :meth:`from_settings` (retention
    ``MEBUKU_RETENTION_DAYS``, default 400 days). A bare ``Limits()`` bounds the past only
    at 2000-01-01 (retention 0), so callers that replay old data on purpose (tests on a
    feed's service day, seeds) keep working; the future skew and payload limit are the
    settings' defaults."""

    retention_days: int = 0
    max_future_skew_seconds: int = 300
    max_payload_bytes: int = 262144

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        """The limits the operator configured."""
        return cls(
            retention_days=s.retention_days,
            max_future_skew_seconds=s.ingest_max_future_skew_seconds,
            max_payload_bytes=s.ingest_max_payload_bytes,
        )

    @cached_property
    def _retention(self) -> timedelta | None:
        # Beyond a century the bound is 2000-01-01 anyway (and huge values would overflow).
        return timedelta(days=min(self.retention_days, 36500)) if self.retention_days > 0 else None

    @cached_property
    def _skew(self) -> timedelta:
        return timedelta(seconds=self.max_future_skew_seconds)

    def window(self, now: datetime) -> TimeWindow:
        """The window of acceptable times for a message received at ``now``."""
        earliest = EARLIEST if self._retention is None else max(EARLIEST, now - self._retention)
        return TimeWindow(earliest, now + self._skew, self)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class TimeWindow:
    """The times a message may carry, given the time it was received."""

    earliest: datetime
    latest: datetime
    limits: Limits

    def check(self, field: str, ts: datetime) -> datetime:
        """``ts`` if it lies in the window; else a reject naming the field and the bound."""
        if ts > self.latest:
            raise FieldError(
                "bad_timestamp",
                f"{field}: {ts.isoformat()} is more than "
                f"{self.limits.max_future_skew_seconds} s in the future",
            )
        if ts < self.earliest:
            raise FieldError("bad_timestamp", f"{field}: {ts.isoformat()} is {self._why_old()}")
        return ts

    def check_epoch(self, field: str, seconds: float) -> None:
        """Like :meth:`check` for epoch seconds, which may be beyond what datetime holds."""
        if seconds > self.latest.timestamp():
            raise FieldError(
                "bad_timestamp",
                f"{field}: {_show_epoch(seconds)} is more than "
                f"{self.limits.max_future_skew_seconds} s in the future",
            )
        if seconds < self.earliest.timestamp():
            raise FieldError(
                "bad_timestamp", f"{field}: {_show_epoch(seconds)} is {self._why_old()}"
            )

    def _why_old(self) -> str:
        if self.earliest == EARLIEST:
            return "before 2000-01-01"
        return (
            f"older than the {self.limits.retention_days}-day retention "
            f"(before {self.earliest.isoformat(timespec='seconds')})"
        )


def _show_epoch(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{seconds:g} s since 1970"


def show_key(key: str) -> str:
    """A key for a reason text: as is when plain, else JSON-quoted in ASCII (so a lone
    surrogate or NUL in it never reaches the reason column)."""
    return key if _PLAIN_KEY.match(key) else json.dumps(key[:40])


def text_problem(v: str) -> str | None:
    """Why ``v`` cannot be stored as PostgreSQL text, or None."""
    m = _NOT_SCALAR.search(v)
    if m is None:
        return None
    c = m.group()
    if c == "\x00":
        return "contains NUL (U+0000)"
    return f"contains a lone surrogate U+{ord(c):04X} (not a Unicode scalar value)"


def check_json(doc: Any, root: str, *, max_depth: int = 1000) -> None:
    """Walk a decoded JSON value: every string (keys too) storable, every float finite,
    nesting at most ``max_depth``. Iterative, so no depth can raise RecursionError."""
    stack: list[tuple[Any, str, int]] = [(doc, root, 0)]
    while stack:
        v, path, depth = stack.pop()
        if isinstance(v, str):
            if (p := text_problem(v)) is not None:
                raise FieldError("bad_text", f"{path or 'value'}: {p}")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise FieldError("out_of_range", f"{path or 'value'}: {v!r} is not a finite number")
        elif isinstance(v, dict | list):
            if depth >= max_depth:
                raise FieldError("bad_json", f"{path or 'value'}: nested deeper than {max_depth}")
            if isinstance(v, dict):
                for k, x in v.items():
                    sub = f"{path}.{show_key(k)}" if path else show_key(k)
                    if (p := text_problem(k)) is not None:
                        raise FieldError("bad_text", f"{sub} (key): {p}")
                    stack.append((x, sub, depth + 1))
            else:
                stack.extend((x, f"{path}[{i}]", depth + 1) for i, x in enumerate(v))


def number(
    obj: dict[str, Any],
    key: str,
    lo: float,
    hi: float,
    *,
    required: bool = False,
    real: bool = False,
) -> float | None:
    """A finite number in [lo, hi]; ``real``: the column is a 32-bit float."""
    v = obj.get(key)
    if v is None:
        if required:
            raise FieldError("missing_field", f"{key} is required")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FieldError("wrong_type", f"{key} must be a number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:  # an int beyond a double's range
        raise FieldError("out_of_range", f"{key} outside [{lo}, {hi}]") from None
    if not math.isfinite(f) or not lo <= f <= hi:
        raise FieldError("out_of_range", f"{key}={f!r} outside [{lo}, {hi}]")
    if real and abs(f) < REAL_MIN:
        return 0.0
    return f


def integer(obj: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    """An optional integer in ``[lo, hi]``; a bool or a float is refused, not truncated."""
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise FieldError("wrong_type", f"{key} must be an integer")
    if not lo <= v <= hi:
        shown = str(v) if abs(v) < 10**30 else f"{str(v)[:12]}... ({len(str(v))} digits)"
        raise FieldError("out_of_range", f"{key}={shown} outside [{lo}, {hi}]")
    return v


def text(
    obj: dict[str, Any], key: str, *, required: bool = False, choices: frozenset[str] | None = None
) -> str | None:
    """An optional string (required or from ``choices`` when asked) that PostgreSQL can store."""
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
    """A non-empty, bounded string of storable characters."""
    if not v or len(v) > MAX_TEXT:
        raise FieldError("out_of_range", f"{key} must have 1..{MAX_TEXT} characters")
    if (p := text_problem(v)) is not None:
        raise FieldError("bad_text", f"{key}: {p}")


def boolean(obj: dict[str, Any], key: str) -> bool | None:
    """An optional JSON boolean; 0 and 1 are refused so a typo is not read as a flag."""
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise FieldError("wrong_type", f"{key} must be true or false")
    return v


def timestamp(obj: dict[str, Any], window: TimeWindow, key: str = "ts") -> datetime:
    """RFC 3339 with an offset, or epoch milliseconds; inside ``window``."""
    v = obj.get(key)
    if v is None:
        raise FieldError("missing_field", f"{key} is required")
    if isinstance(v, bool):
        raise FieldError("wrong_type", f"{key} must be RFC 3339 text or epoch milliseconds")
    if isinstance(v, int | float):
        try:
            ms = float(v)
        except OverflowError:
            ms = math.inf
        if not math.isfinite(ms):
            raise FieldError("bad_timestamp", f"{key}: {str(v)[:40]} is not epoch milliseconds")
        window.check_epoch(key, ms / 1000)
        return EPOCH + timedelta(milliseconds=ms)
    if isinstance(v, str):
        return window.check(key, parse_rfc3339(key, v))
    raise FieldError("wrong_type", f"{key} must be RFC 3339 text or epoch milliseconds")


def parse_rfc3339(key: str, v: str) -> datetime:
    """A strict RFC 3339 time with an offset: a time without one would be read in an unknown
    zone."""
    # RFC 3339 requires a 'T' (or space) separator, seconds and an offset.
    if len(v) < 20 or len(v) > 40 or v[10] not in "Tt " or v[4] != "-" or v[7] != "-":
        raise FieldError("bad_timestamp", f"{key}={v[:40]!r} is not RFC 3339")
    try:
        ts = datetime.fromisoformat(v[:-1] + "+00:00" if v[-1] in "Zz" else v)
    except ValueError as e:
        raise FieldError("bad_timestamp", f"{key}={v[:40]!r} is not RFC 3339") from e
    if ts.tzinfo is None:
        raise FieldError("bad_timestamp", f"{key}={v[:40]!r} has no UTC offset")
    try:
        return ts.astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00:00+09:00 is before datetime.min in UTC
        raise FieldError("bad_timestamp", f"{key}={v[:40]!r} is out of range") from e

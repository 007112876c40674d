"""SenML JSON (RFC 8428) resolution: a pack of records -> resolved records.

Section 4.6: base fields (bn, bt, bu, bv, bs, bver) apply to their record and every later
record until replaced; name = bn + n, time = bt + t, value = bv + v, sum = bs + s, unit =
u or bu. A resolved time below 2**28 is relative to now (section 4.5.3), so it is added
to the time the message was received. Labels ending in "_" must be understood (section
4.4), so unknown ones reject the pack; other unknown labels are ignored. Every resolved
time, absolute or relative, must lie in the ingestor's time window (retention in the past,
a small skew ahead): a pack with t = 1e11 (year 5138) or t = -6e10 is rejected, naming the
record (``senml[3].t``).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.fields import DEFAULT_LIMITS, FieldError, TimeWindow, text_problem

SUPPORTED_VERSION = 10
RELATIVE_LIMIT = 2**28
NAME_RE = re.compile(r"[A-Za-z0-9][-:./_A-Za-z0-9]*\Z")
KNOWN = frozenset(
    {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
)
MAX_RECORDS = 1000


@dataclass(frozen=True)
class Record:
    """A resolved SenML record: exactly one value kind, or a sum, or both."""

    name: str
    time: datetime
    unit: str | None
    value: float | None = None
    value_string: str | None = None
    value_bool: bool | None = None
    value_data: str | None = None
    sum: float | None = None


def _num(rec: dict[str, Any], key: str, i: int) -> float | None:
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FieldError("bad_senml", f"senml[{i}].{key} must be a finite number")
    try:
        f = float(v)
    except OverflowError:  # an int beyond a double's range
        f = math.inf
    if not math.isfinite(f):
        raise FieldError("bad_senml", f"senml[{i}].{key} must be a finite number")
    return f


def _str(rec: dict[str, Any], key: str, i: int) -> str | None:
    v = rec.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 1000:
        raise FieldError("bad_senml", f"senml[{i}].{key} must be a string of at most 1000")
    if (p := text_problem(v)) is not None:
        raise FieldError("bad_text", f"senml[{i}].{key}: {p}")
    return v


def _finite(i: int, key: str, x: float) -> float:
    if not math.isfinite(x):
        raise FieldError("bad_senml", f"senml[{i}]: resolved {key} is not finite")
    return x


@dataclass
class _Base:
    """The base fields in force at a record (section 4.6): they carry over to later records
    until replaced, so they live across the loop over a pack."""

    name: str = ""
    unit: str | None = None
    time: float = 0.0
    value: float = 0.0
    sum: float = 0.0
    version: int | None = None

    def update(self, rec: dict[str, Any], i: int) -> None:
        """Take the base fields record ``i`` sets; a bad one rejects the pack."""
        if "bver" in rec:
            self.version = _version(rec["bver"], self.version)
        if (v := _str(rec, "bn", i)) is not None:
            self.name = v
        if "bu" in rec:
            self.unit = _str(rec, "bu", i)
        if "bt" in rec:
            self.time = _num(rec, "bt", i) or 0.0
        if "bv" in rec:
            self.value = _num(rec, "bv", i) or 0.0
        if "bs" in rec:
            self.sum = _num(rec, "bs", i) or 0.0


@dataclass(frozen=True)
class _Values:
    """The one value a record carries (at most one kind), resolved against the base value."""

    kinds: list[str]
    value: float | None = None
    value_string: str | None = None
    value_bool: bool | None = None
    value_data: str | None = None


def _version(ver: Any, version: int | None) -> int:
    """Check a ``bver``: an integer we support, the same across the pack."""
    if isinstance(ver, bool) or not isinstance(ver, int):
        raise FieldError("bad_senml", "bver must be an integer")
    if ver > SUPPORTED_VERSION or ver < 1:
        raise FieldError("bad_senml", f"unsupported SenML version {ver}")
    if version is not None and ver != version:
        raise FieldError("bad_senml", "records of one pack must share a version")
    return ver


def _check_labels(i: int, rec: Any) -> None:
    """A record is an object whose must-understand labels (ending in "_") we all know."""
    if not isinstance(rec, dict):
        raise FieldError("bad_senml", f"senml[{i}] is not an object")
    for k in rec:
        if k not in KNOWN and k.endswith("_"):
            raise FieldError("bad_senml", f"senml[{i}]: must-understand label {k!r}")


def _values(i: int, rec: dict[str, Any], base_value: float) -> _Values:
    """The record's value of its one kind (v, vs, vb or vd), each checked for its type."""
    kinds = [k for k in ("v", "vs", "vb", "vd") if rec.get(k) is not None]
    if len(kinds) > 1:
        raise FieldError("bad_senml", f"senml[{i}]: more than one value ({', '.join(kinds)})")
    if kinds == ["v"]:
        return _Values(kinds, value=_finite(i, "value", base_value + (_num(rec, "v", i) or 0.0)))
    if kinds == ["vs"]:
        return _Values(kinds, value_string=_str(rec, "vs", i))
    if kinds == ["vb"]:
        if not isinstance(rec["vb"], bool):
            raise FieldError("bad_senml", f"senml[{i}].vb must be true or false")
        return _Values(kinds, value_bool=rec["vb"])
    if kinds == ["vd"]:
        value_data = _str(rec, "vd", i)
        _check_base64url(i, value_data or "")
        return _Values(kinds, value_data=value_data)
    return _Values(kinds)


def _record(
    i: int, rec: dict[str, Any], base: _Base, received_at: datetime, window: TimeWindow
) -> Record:
    """Resolve record ``i`` against the base fields in force (after ``base.update``)."""
    name = base.name + (_str(rec, "n", i) or "")
    if not NAME_RE.match(name):
        raise FieldError("bad_senml", f"senml[{i}]: invalid name {name[:60]!r}")
    _num(rec, "ut", i)
    t = _finite(i, "time", base.time + (_num(rec, "t", i) or 0.0))
    values = _values(i, rec, base.value)
    total = None
    if rec.get("s") is not None:
        total = _finite(i, "sum", base.sum + (_num(rec, "s", i) or 0.0))
    if not values.kinds and total is None:
        raise FieldError("bad_senml", f"senml[{i}]: no value and no sum")
    return Record(
        name=name,
        time=_to_datetime(_time_field(i, rec), t, received_at, window),
        unit=_str(rec, "u", i) or base.unit,
        value=values.value,
        value_string=values.value_string,
        value_bool=values.value_bool,
        value_data=values.value_data,
        sum=total,
    )


def resolve(pack: Any, received_at: datetime, window: TimeWindow | None = None) -> list[Record]:
    """Resolve a pack; ``window`` (default: the default limits at ``received_at``) bounds
    every resolved time."""
    window = window or DEFAULT_LIMITS.window(received_at)
    if not isinstance(pack, list) or not pack:
        raise FieldError("bad_senml", "a SenML pack is a non-empty JSON array of records")
    if len(pack) > MAX_RECORDS:
        raise FieldError("bad_senml", f"more than {MAX_RECORDS} records")
    base = _Base()
    out: list[Record] = []
    for i, rec in enumerate(pack):
        _check_labels(i, rec)
        base.update(rec, i)
        out.append(_record(i, rec, base, received_at, window))
    return out


def _check_base64url(i: int, s: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s) or len(s) % 4 == 1:
        raise FieldError("bad_senml", f"senml[{i}].vd is not base64url")
    try:
        base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError) as e:
        raise FieldError("bad_senml", f"senml[{i}].vd is not base64url") from e


def _time_field(i: int, rec: dict[str, Any]) -> str:
    """The label a bad resolved time is blamed on: t, else the record's own bt."""
    return f"senml[{i}].bt" if "t" not in rec and "bt" in rec else f"senml[{i}].t"


def _to_datetime(field: str, t: float, received_at: datetime, window: TimeWindow) -> datetime:
    """Resolve (relative below 2**28, RFC 8428 section 4.5.3) and bound-check a time.

    The bounds are checked on epoch seconds first, so times far beyond what a datetime
    holds are rejected with the same reason instead of overflowing.
    """
    relative = t < RELATIVE_LIMIT
    window.check_epoch(field, received_at.timestamp() + t if relative else t)
    try:
        return received_at + timedelta(seconds=t) if relative else datetime.fromtimestamp(t, UTC)
    except (OverflowError, ValueError, OSError) as e:
        raise FieldError("bad_timestamp", f"{field}: {t!r} is out of range") from e

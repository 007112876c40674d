"""SenML JSON (RFC 8428) resolution: a pack of records -> resolved records.

Section 4.6: base fields (bn, bt, bu, bv, bs, bver) apply to their record and every later
record until replaced; name = bn + n, time = bt + t, value = bv + v, sum = bs + s, unit =
u or bu. A resolved time below 2**28 is relative to now (section 4.5.3), so it is added
to the time the message was received. Labels ending in "_" must be understood (section
4.4), so unknown ones reject the pack; other unknown labels are ignored.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.fields import FieldError

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


def _num(rec: dict[str, Any], key: str) -> float | None:
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise FieldError("bad_senml", f"{key} must be a finite number")
    return float(v)


def _str(rec: dict[str, Any], key: str) -> str | None:
    v = rec.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or "\x00" in v or len(v) > 1000:
        raise FieldError("bad_senml", f"{key} must be a string")
    return v


def _finite(key: str, x: float) -> float:
    if not math.isfinite(x):
        raise FieldError("bad_senml", f"resolved {key} is not finite")
    return x


def resolve(pack: Any, received_at: datetime) -> list[Record]:
    if not isinstance(pack, list) or not pack:
        raise FieldError("bad_senml", "a SenML pack is a non-empty JSON array of records")
    if len(pack) > MAX_RECORDS:
        raise FieldError("bad_senml", f"more than {MAX_RECORDS} records")
    bn, bu = "", None
    bt = bv = bs = 0.0
    version: int | None = None
    out: list[Record] = []
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise FieldError("bad_senml", f"record {i} is not an object")
        for k in rec:
            if k not in KNOWN and k.endswith("_"):
                raise FieldError("bad_senml", f"record {i}: must-understand label {k!r}")
        if "bver" in rec:
            ver = rec["bver"]
            if isinstance(ver, bool) or not isinstance(ver, int):
                raise FieldError("bad_senml", "bver must be an integer")
            if ver > SUPPORTED_VERSION or ver < 1:
                raise FieldError("bad_senml", f"unsupported SenML version {ver}")
            if version is not None and ver != version:
                raise FieldError("bad_senml", "records of one pack must share a version")
            version = ver
        if (v := _str(rec, "bn")) is not None:
            bn = v
        if "bu" in rec:
            bu = _str(rec, "bu")
        if "bt" in rec:
            bt = _num(rec, "bt") or 0.0
        if "bv" in rec:
            bv = _num(rec, "bv") or 0.0
        if "bs" in rec:
            bs = _num(rec, "bs") or 0.0
        name = bn + (_str(rec, "n") or "")
        if not NAME_RE.match(name):
            raise FieldError("bad_senml", f"record {i}: invalid name {name[:60]!r}")
        _num(rec, "ut")
        t = _finite("time", bt + (_num(rec, "t") or 0.0))
        kinds = [k for k in ("v", "vs", "vb", "vd") if rec.get(k) is not None]
        if len(kinds) > 1:
            raise FieldError("bad_senml", f"record {i}: more than one value ({', '.join(kinds)})")
        value = value_string = value_data = None
        value_bool = None
        if kinds == ["v"]:
            value = _finite("value", bv + (_num(rec, "v") or 0.0))
        elif kinds == ["vs"]:
            value_string = _str(rec, "vs")
        elif kinds == ["vb"]:
            if not isinstance(rec["vb"], bool):
                raise FieldError("bad_senml", f"record {i}: vb must be true or false")
            value_bool = rec["vb"]
        elif kinds == ["vd"]:
            value_data = _str(rec, "vd")
            _check_base64url(i, value_data or "")
        total = None
        if rec.get("s") is not None:
            total = _finite("sum", bs + (_num(rec, "s") or 0.0))
        if not kinds and total is None:
            raise FieldError("bad_senml", f"record {i}: no value and no sum")
        out.append(
            Record(
                name=name,
                time=_to_datetime(i, t, received_at),
                unit=_str(rec, "u") or bu,
                value=value,
                value_string=value_string,
                value_bool=value_bool,
                value_data=value_data,
                sum=total,
            )
        )
    return out


def _check_base64url(i: int, s: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s) or len(s) % 4 == 1:
        raise FieldError("bad_senml", f"record {i}: vd is not base64url")
    try:
        base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError) as e:
        raise FieldError("bad_senml", f"record {i}: vd is not base64url") from e


def _to_datetime(i: int, t: float, received_at: datetime) -> datetime:
    try:
        if t < RELATIVE_LIMIT:
            return received_at + timedelta(seconds=t)
        return datetime.fromtimestamp(t, UTC)
    except (OverflowError, ValueError, OSError) as e:
        raise FieldError("bad_timestamp", f"record {i}: time {t!r} out of range") from e

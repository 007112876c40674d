"""Pure parsers, one per stream: (topic ids, payload, received_at, limits) -> rows. No I/O.

Each parser returns the rows of its stream's table (in the column order of its
:class:`ingest.rows.TableSpec` in :mod:`ingest.streams`) or raises
:class:`ingest.fields.FieldError`; :func:`ingest.parse.parse_message` routes by topic and
turns every failure into a Reject. Whatever a parser returns as rows, the database can
store: strings are Unicode scalar values without NUL, numbers are finite and inside their
column's range, times lie inside the window of :class:`ingest.fields.Limits`. Payload
rules: docs/schemas/*.json and ingest/README.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ingest import senml
from ingest.fields import (
    DEFAULT_LIMITS,
    FieldError,
    Limits,
    boolean,
    check_json,
    check_text,
    integer,
    number,
    text,
    timestamp,
)

MAX_PAYLOAD = DEFAULT_LIMITS.max_payload_bytes
# Event details are stored as jsonb: keep them shallow (PostgreSQL and json.dumps recurse).
MAX_DETAIL_DEPTH = 32
MODES = frozenset({"autonomous", "manual", "remote"})
DEVICE_STATES = frozenset({"ok", "degraded", "fault"})
CAUSES = frozenset({"parked_vehicle", "pedestrian", "signal", "right_turn", "obstacle", "other"})
RADIO_METRICS: dict[str, tuple[float, float]] = {
    # 3GPP TS 38.133 reporting ranges for SS-RSRP/RSRQ/SINR; physical limits otherwise.
    "rsrp_dbm": (-156, -31),
    "rsrq_db": (-43, 20),
    "sinr_db": (-23, 40),
    "dl_mbps": (0, 20_000),
    "ul_mbps": (0, 10_000),
    "rtt_ms": (0, 60_000),
    "jitter_ms": (0, 60_000),
    "loss_pct": (0, 100),
}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once, not per message


def _load(payload: bytes, limit: int, root: str = "") -> Any:
    r"""Decode UTF-8 JSON; refuse strings PostgreSQL cannot store, naming the field.

    Strict UTF-8 decoding refuses encoded surrogates, and the json module refuses raw
    control characters in strings, so a lone surrogate or a NUL can only come from a
    ``\u`` escape: the whole document is walked only when the text holds one.
    """
    if len(payload) > limit:
        raise FieldError("too_large", f"payload of {len(payload)} bytes exceeds {limit}")
    try:
        txt = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FieldError("bad_utf8", str(e)) from e
    try:
        doc = _DECODER.decode(txt)
    except (ValueError, RecursionError) as e:
        raise FieldError("bad_json", str(e)[:200]) from e
    if "\\u" in txt:
        check_json(doc, root)
    return doc


def _object(payload: bytes, limits: Limits) -> dict[str, Any]:
    doc = _load(payload, limits.max_payload_bytes)
    if not isinstance(doc, dict):
        raise FieldError("not_object", "payload must be a JSON object")
    return doc


def parse_telemetry(
    ids: Sequence[str], payload: bytes, received_at: datetime, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[Any, ...]]:
    """A bus telemetry message: one row per fix, every field checked before anything is stored."""
    (vehicle_id,) = ids
    d = _object(payload, limits)
    row = (
        vehicle_id,
        timestamp(d, limits.window(received_at)),
        integer(d, "seq", 0, 2**63 - 1),
        number(d, "lat", -90, 90, required=True),
        number(d, "lon", -180, 180, required=True),
        number(d, "speed_mps", 0, 100, real=True),
        _heading(d),
        number(d, "odometer_m", 0, 1e10),
        text(d, "mode", choices=MODES),
        boolean(d, "door_open"),
        integer(d, "passengers", 0, 1000),
        text(d, "trip_id"),
        text(d, "route_id"),
        number(d, "soc_pct", 0, 100, real=True),
    )
    return [row]


# The largest 32-bit float below 360: heading_deg is a `real` with CHECK (< 360), and a
# valid 359.99999 would round up to 360.0 there.
HEADING_MAX_REAL = 359.9999694824219


def _heading(d: dict[str, Any]) -> float | None:
    h = number(d, "heading_deg", 0, 360, real=True)
    if h == 360:
        raise FieldError("out_of_range", "heading_deg must be below 360")
    return None if h is None else min(h, HEADING_MAX_REAL)


def parse_event(
    ids: Sequence[str], payload: bytes, received_at: datetime, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[Any, ...]]:
    """A bus event message (door, stop request, fault) as one row."""
    (vehicle_id,) = ids
    d = _object(payload, limits)
    etype = text(d, "type", required=True)
    assert etype is not None
    if not etype.replace("_", "").isascii() or not etype.replace("_", "").isalnum():
        raise FieldError("out_of_range", "type must be a snake_case word")
    detail = d.get("detail")
    if detail is not None and not isinstance(detail, dict):
        raise FieldError("wrong_type", "detail must be an object")
    detail_json = None
    if detail is not None:
        # jsonb refuses NUL, lone surrogates and non-finite numbers (1e400 decodes to inf).
        check_json(detail, "detail", max_depth=MAX_DETAIL_DEPTH)
        detail_json = json.dumps(detail, ensure_ascii=False, allow_nan=False)
    row = (
        vehicle_id,
        timestamp(d, limits.window(received_at)),
        etype,
        text(d, "cause", choices=CAUSES),
        detail_json,
    )
    return [row]


def parse_radio(
    ids: Sequence[str], payload: bytes, received_at: datetime, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[Any, ...]]:
    """A 5G radio measurement as one row of radio KPIs."""
    site_id, device_id = ids
    d = _object(payload, limits)
    metrics = [number(d, k, lo, hi, real=True) for k, (lo, hi) in RADIO_METRICS.items()]
    if all(m is None for m in metrics):
        raise FieldError("missing_field", f"at least one of {', '.join(RADIO_METRICS)} is required")
    row = (
        site_id,
        device_id,
        timestamp(d, limits.window(received_at)),
        *metrics,
        _id_text(d, "cell_id"),
        integer(d, "pci", 0, 1007),
        text(d, "band"),
        number(d, "lat", -90, 90),
        number(d, "lon", -180, 180),
    )
    return [row]


def _id_text(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if isinstance(v, int) and not isinstance(v, bool):  # cell ids are often sent as numbers
        if not -(10**40) < v < 10**40:
            raise FieldError("out_of_range", f"{key} has more than 40 digits")
        return str(v)
    return text(d, key)


def parse_senml(
    ids: Sequence[str], payload: bytes, received_at: datetime, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[Any, ...]]:
    """A SenML pack from a 5G device: one row per resolved record."""
    site_id, device_id = ids
    pack = _load(payload, limits.max_payload_bytes, "senml")
    records = senml.resolve(pack, received_at, limits.window(received_at))
    rows: list[tuple[Any, ...]] = []
    for r in records:
        check_text("name", r.name)
        rows.append(
            (
                site_id,
                device_id,
                r.name,
                r.time,
                r.unit,
                r.value,
                r.value_string,
                r.value_bool,
                r.value_data,
                r.sum,
            )
        )
    return rows


def parse_status(
    ids: Sequence[str], payload: bytes, received_at: datetime, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[Any, ...]]:
    """A 5G device heartbeat: is it up, its battery (absent when mains-powered), firmware."""
    site_id, device_id = ids
    d = _object(payload, limits)
    row = (
        site_id,
        device_id,
        timestamp(d, limits.window(received_at)),
        text(d, "status", required=True, choices=DEVICE_STATES),
        number(d, "battery_pct", 0, 100, real=True),
        text(d, "firmware", required=True),
    )
    return [row]

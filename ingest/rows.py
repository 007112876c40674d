"""What a parsed message becomes: rows for one shared time-series table, or a reject.

Rows are plain tuples in the column order of :data:`TABLES`, so the writer can COPY them
without knowing which topic they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


TELEMETRY = TableSpec(
    "bus_telemetry",
    (
        "vehicle_id",
        "ts",
        "seq",
        "lat",
        "lon",
        "speed_mps",
        "heading_deg",
        "odometer_m",
        "mode",
        "door_open",
        "passengers",
        "trip_id",
        "route_id",
        "soc_pct",
    ),
    ("vehicle_id", "ts"),
)
EVENTS = TableSpec(
    "bus_events", ("vehicle_id", "ts", "type", "cause", "detail"), ("vehicle_id", "ts", "type")
)
RADIO = TableSpec(
    "fiveg_radio",
    (
        "site_id",
        "device_id",
        "ts",
        "rsrp_dbm",
        "rsrq_db",
        "sinr_db",
        "dl_mbps",
        "ul_mbps",
        "rtt_ms",
        "jitter_ms",
        "loss_pct",
        "cell_id",
        "pci",
        "band",
        "lat",
        "lon",
    ),
    ("device_id", "ts"),
)
SENSOR = TableSpec(
    "fiveg_sensor",
    (
        "site_id",
        "device_id",
        "name",
        "ts",
        "unit",
        "value",
        "value_string",
        "value_bool",
        "value_data",
        "sum",
    ),
    ("device_id", "name", "ts"),
)
TABLES: dict[str, TableSpec] = {t.name: t for t in (TELEMETRY, EVENTS, RADIO, SENSOR)}


@dataclass(frozen=True)
class Rows:
    """A valid message: one or more rows for ``table``."""

    table: TableSpec
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Reject:
    """An invalid message. ``code`` is a short stable label (metrics); ``detail`` says why."""

    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


Parsed = Rows | Reject

"""The stream catalogue: every MQTT stream the ingestor accepts, in one place.

Each :class:`Stream` names its topic pattern, its parser, the table its rows go to (with
the key columns that make a redelivery a no-op), its JSON Schema under docs/schemas/,
the service roles that read its table besides the API, and any column Grafana must see
blurred. Everything else that lists streams or tables is derived from :data:`STREAMS`: the
parser dispatch (:func:`ingest.parse.parse_message`), the writer's tables
(:data:`ingest.rows.TABLES`), the ingest and platform dashboards, the API's ingest series
and the panel seed; and, through the ``mebuku.streams`` entry point
(:func:`declarations`, read by :mod:`core.streams`), the broker ACL, the table's grants
and its ``grafana.<table>`` view. The contract tests (tests/ingest/test_streams.py) run
over it, so a new stream is a catalogue entry, a migration, a schema file and a parser
(ingest/README.md, "Adding a stream").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from core.i18n import N_
from core.streams import StreamDecl
from ingest.fields import Limits
from ingest.parsers import parse_event, parse_radio, parse_senml, parse_status, parse_telemetry
from ingest.rows import TableSpec

Parser = Callable[[Sequence[str], bytes, datetime, Limits], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Stream:
    """One topic family and where its rows go."""

    name: str  # short label, shown on dashboards
    topic: str  # e.g. "maebashi/bus/{vehicle_id}/telemetry"
    parser: Parser
    table: TableSpec
    schema: str  # file name under docs/schemas/
    # Service roles that read the table besides api and maintain (core/roles/grants.toml
    # [streams] gives every stream table the writer's, the API's and retention's rights).
    readers: tuple[str, ...] = ()
    # column -> SQL expression that grafana.<table> shows instead of the raw value
    grafana: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # What people call the stream: an English catalogue msgid (core/locale), shown in its
    # language on dashboards; empty means the name.
    title: str = ""

    @property
    def levels(self) -> tuple[str, ...]:
        """The topic's levels, placeholders included."""
        return tuple(self.topic.split("/"))

    @property
    def ids(self) -> tuple[str, ...]:
        """The placeholder names, in topic order (what the parser gets as ``ids``)."""
        return tuple(p[1:-1] for p in self.levels if p.startswith("{"))

    def topic_for(self, **ids: str) -> str:
        """A concrete topic for these ids (publishers and tests)."""
        return self.topic.format(**ids)

    def filter(self) -> str:
        """The MQTT subscription filter (placeholders become ``+``)."""
        return "/".join("+" if p.startswith("{") else p for p in self.levels)

    def declaration(self) -> StreamDecl:
        """What core derives the ACL, grants and Grafana view from."""
        return StreamDecl(self.topic, self.table.name, self.table.columns, self.readers,
                          self.grafana)  # fmt: skip


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
    # The sample's 50 m EPSG:6677 cell (core/roles/migrations/0420).
    derived=("cell_x", "cell_y"),
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
STATUS = TableSpec(
    "fiveg_device_status",
    ("site_id", "device_id", "ts", "status", "battery_pct", "firmware"),
    ("device_id", "ts"),
)

STREAMS: tuple[Stream, ...] = (
    Stream(
        "telemetry",
        "maebashi/bus/{vehicle_id}/telemetry",
        parse_telemetry,
        TELEMETRY,
        "bus-telemetry.json",
        readers=("mobility",),  # the vehicle tracker follows the buses
        title=N_("Bus telemetry"),
    ),
    Stream(
        "events",
        "maebashi/bus/{vehicle_id}/event",
        parse_event,
        EVENTS,
        "bus-event.json",
        title=N_("Bus events"),
    ),
    Stream(
        "5G radio",
        "maebashi/5g/{site_id}/{device_id}/radio",
        parse_radio,
        RADIO,
        "fiveg-radio.json",
        # Phones take part in 5G trials: Grafana sees positions snapped to the dashboards'
        # ~50 m cell centres (0.00045 deg lat x 0.00056 deg lon), so no viewer can follow
        # a handset.
        grafana=MappingProxyType(
            {
                "lat": "(floor(lat / 0.00045) + 0.5) * 0.00045",
                "lon": "(floor(lon / 0.00056) + 0.5) * 0.00056",
            }
        ),
        title=N_("5G radio measurements"),
    ),
    Stream(
        "SenML",
        "maebashi/5g/{site_id}/{device_id}/senml",
        parse_senml,
        SENSOR,
        "fiveg-senml.json",
        title=N_("Field sensors (SenML)"),
    ),
    Stream(
        "5G device status",
        "maebashi/5g/{site_id}/{device_id}/status",
        parse_status,
        STATUS,
        "fiveg-device-status.json",
        title=N_("5G device heartbeats"),
    ),
)

# Every table the ingestor writes, in catalogue order (one table may serve several streams).
TABLES: dict[str, TableSpec] = {s.table.name: s.table for s in STREAMS}


def declarations() -> list[StreamDecl]:
    """The catalogue for core (entry point ``mebuku.streams``): broker ACL, grants, views."""
    return [s.declaration() for s in STREAMS]


@dataclass(frozen=True)
class _Route:
    """A stream's pattern, precomputed for matching a topic split at "/"."""

    stream: Stream
    literal_at: tuple[int, ...]
    literals: tuple[str, ...]
    ids_at: tuple[tuple[str, int], ...]  # (placeholder name, level index)


def _route(s: Stream) -> _Route:
    lit = [(i, p) for i, p in enumerate(s.levels) if not p.startswith("{")]
    ids = tuple((p[1:-1], i) for i, p in enumerate(s.levels) if p.startswith("{"))
    return _Route(s, tuple(i for i, _ in lit), tuple(p for _, p in lit), ids)


# Routes by number of topic levels; patterns of one length differ in a literal level.
_ROUTES: dict[int, list[_Route]] = {}
for _s in STREAMS:
    _ROUTES.setdefault(len(_s.levels), []).append(_route(_s))


def match(levels: Sequence[str]) -> tuple[Stream, list[tuple[str, str]]] | None:
    """The stream whose pattern has these topic levels, with its (id name, value) pairs
    (the ids are not checked here), or None."""
    for r in _ROUTES.get(len(levels), ()):
        if all(levels[i] == p for i, p in zip(r.literal_at, r.literals, strict=True)):
            return r.stream, [(name, levels[i]) for name, i in r.ids_at]
    return None

"""The mobility worker: reads new telemetry from ``bus_telemetry``, runs the tracker and
writes ``vehicle_state`` and ``vehicle_events``.

Why tail the table instead of subscribing to MQTT: the ingest worker has already
validated, de-duplicated and committed each row (bad messages are in ingest_rejects), so
the tracker only ever sees data that is also in the database and a restart resumes from a
stored cursor without a second MQTT parser. Rows are read in ``received_at`` order up to
``hold`` (300 ms) behind the database clock, because ``received_at`` is the writer's
transaction start and a transaction commits a little later; a sweep every second re-reads
the ``lookback`` window behind the cursor for rows committed later still (newer than what
the tracker has for their vehicle). On start it replays ``warmup`` of history to rebuild
each vehicle's state, writing only events it had not written before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from core.i18n import L_
from mobility.vehicles.metrics import MobilityMetrics
from mobility.vehicles.schedule import Schedule, load_schedule, utc
from mobility.vehicles.tracker import Event, Fix, Tracker, TrackerConfig, VehicleState

log = logging.getLogger(__name__)
CURSOR = "state"

_COLUMNS = """vehicle_id, ts, lat, lon, speed_mps, heading_deg, mode, trip_id, route_id,
       odometer_m, passengers, received_at"""
# Keyset pagination: rows after the last one read, in commit-clock order, up to a short
# hold behind now() so that the writers' transactions stamped earlier have committed.
_SELECT = f"""
SELECT {_COLUMNS} FROM bus_telemetry
WHERE (received_at, vehicle_id, ts) > (%s, %s, %s) AND received_at < now() - %s::interval
  {{ts_bound}}
ORDER BY received_at, vehicle_id, ts
LIMIT %s
"""
# Late commits: rows in a window behind the cursor that are newer than what the tracker
# has for their vehicle (anything older would be dropped by the tracker anyway).
_SWEEP = f"""
SELECT {_COLUMNS.replace("vehicle_id,", "b.vehicle_id,", 1)}
FROM bus_telemetry b
LEFT JOIN unnest(%s::text[], %s::timestamptz[]) AS v(vid, last_ts) ON v.vid = b.vehicle_id
WHERE b.received_at >= %s AND b.received_at < %s AND (v.last_ts IS NULL OR b.ts > v.last_ts)
  {{ts_bound}}
ORDER BY b.received_at, b.vehicle_id, b.ts
"""

_UPSERT = """
INSERT INTO vehicle_state (vehicle_id, ts, lat, lon, speed_mps, heading_deg, mode, status,
    trip_id, route_id, direction_id, service_date, operator_id, dist_along_m, offset_m,
    next_stop_id, next_stop_sequence, delay_s, telemetry_received_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (vehicle_id) DO UPDATE SET
    ts = EXCLUDED.ts, lat = EXCLUDED.lat, lon = EXCLUDED.lon, speed_mps = EXCLUDED.speed_mps,
    heading_deg = EXCLUDED.heading_deg, mode = EXCLUDED.mode, status = EXCLUDED.status,
    trip_id = EXCLUDED.trip_id, route_id = EXCLUDED.route_id,
    direction_id = EXCLUDED.direction_id, service_date = EXCLUDED.service_date,
    operator_id = EXCLUDED.operator_id, dist_along_m = EXCLUDED.dist_along_m,
    offset_m = EXCLUDED.offset_m, next_stop_id = EXCLUDED.next_stop_id,
    next_stop_sequence = EXCLUDED.next_stop_sequence, delay_s = EXCLUDED.delay_s,
    telemetry_received_at = EXCLUDED.telemetry_received_at, updated_at = now()
WHERE vehicle_state.ts <= EXCLUDED.ts
"""

_INSERT_EVENT = """
INSERT INTO vehicle_events (vehicle_id, ts, type, stop_id, trip_id, route_id, direction_id,
    operator_id, stop_sequence, service_date, scheduled_ts, delay_s, dwell_s, detail)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""


def fix_from_row(row: Sequence[object]) -> Fix:
    """A bus_telemetry row (in _SELECT's column order) as a tracker Fix."""
    ts = row[1]
    assert isinstance(ts, datetime)
    return Fix(
        vehicle_id=str(row[0]),
        ts=ts.timestamp(),
        lat=float(row[2]),  # type: ignore[arg-type]
        lon=float(row[3]),  # type: ignore[arg-type]
        speed_mps=None if row[4] is None else float(row[4]),  # type: ignore[arg-type]
        heading_deg=None if row[5] is None else float(row[5]),  # type: ignore[arg-type]
        mode=row[6],  # type: ignore[arg-type]
        trip_id=row[7],  # type: ignore[arg-type]
        route_id=row[8],  # type: ignore[arg-type]
        odometer_m=None if row[9] is None else float(row[9]),  # type: ignore[arg-type]
        passengers=row[10],  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class WorkerConfig:
    """The state worker's timing knobs, so tests and replays can run it faster or slower."""

    poll_s: float = 0.1
    batch: int = 20_000
    hold: timedelta = timedelta(milliseconds=300)
    lookback: timedelta = timedelta(seconds=2)
    sweep_s: float = 1.0
    warmup: timedelta = timedelta(minutes=15)
    reload_feed_s: float = 60.0
    # Fixes stamped longer than this before the cursor are history, not live state. The
    # bound on ts lets TimescaleDB skip old (compressed) chunks on every poll. None: no
    # bound (replaying a recorded day whose ts are far behind their received_at).
    max_fix_age: timedelta | None = None
    # Arrival predictions (issue 15): every this many seconds learn from the new stop
    # events, sample the predictions issued now and score the earlier ones (0: never).
    predictions_s: float = 60.0
    # ... learning from this long a history (older observations are forgotten).
    prediction_window: timedelta = timedelta(days=56)


class StateWorker:
    """Thin adapter around :class:`Tracker`. ``run_once`` is one poll (used by tests)."""

    def __init__(
        self,
        url: str,
        tracker_config: TrackerConfig | None = None,
        config: WorkerConfig | None = None,
        *,
        metrics: MobilityMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.config = config or WorkerConfig()
        self.tracker_config = tracker_config or TrackerConfig()
        self.metrics = metrics or MobilityMetrics()
        self.clock = clock
        self.conn = psycopg.connect(url, autocommit=True, application_name="mebuku-mobility")
        try:
            self.schedule: Schedule = load_schedule(self.conn)
        except RuntimeError:
            # No feed yet: track positions without trips; the feed check picks it up.
            log.warning(L_("no GTFS feed imported yet: vehicles are tracked without trips"))
            self.schedule = Schedule(None, {}, {}, {}, {}, {})
        self.tracker = Tracker(self.schedule, self.tracker_config)
        self.metrics.feed_version.set(self.schedule.version or 0)
        self._feed_checked = time.monotonic()
        row = self.conn.execute(
            "SELECT received_at FROM mobility_worker_cursor WHERE name = %s", [CURSOR]
        ).fetchone()
        self.written_up_to: datetime | None = row[0] if row else None
        start = (self.written_up_to - self.config.warmup) if self.written_up_to else None
        self.cursor: datetime = start or datetime.fromtimestamp(0).astimezone()
        self.key: tuple[datetime, str, datetime] = (self.cursor, "", self.cursor)
        self._swept_to: datetime | None = None
        self._sweep_at = time.monotonic()
        self._predictions_at = time.monotonic()
        self._stop = threading.Event()
        self._pending: tuple[dict[str, tuple[VehicleState, datetime]], list[Event]] = ({}, [])

    def close(self) -> None:
        """Release the database connection (the worker owns it, so nothing else will)."""
        self.conn.close()

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current poll, e.g. from a signal handler."""
        self._stop.set()

    def _maybe_reload_feed(self) -> None:
        if time.monotonic() - self._feed_checked < self.config.reload_feed_s:
            return
        self._feed_checked = time.monotonic()
        row = self.conn.execute("SELECT gtfs_current_version()").fetchone()
        if row and row[0] is not None and row[0] != self.schedule.version:
            log.info(L_("GTFS feed version %s replaces %s"), row[0], self.schedule.version)
            self.schedule = load_schedule(self.conn)
            self.tracker = Tracker(self.schedule, self.tracker_config)
            self.metrics.feed_version.set(self.schedule.version or 0)

    def _ts_bound(self, query: str, since: datetime) -> tuple[str, list[datetime]]:
        age = self.config.max_fix_age
        if age is None:
            return query.format(ts_bound=""), []
        column = "b.ts" if "FROM bus_telemetry b" in query else "ts"
        return query.format(ts_bound=f"AND {column} >= %s"), [since - age]

    def run_once(self) -> int:
        """Read and process one batch of new telemetry; returns the rows read."""
        query, bound = self._ts_bound(_SELECT, self.key[0])
        rows = self.conn.execute(
            query, [*self.key, self.config.hold, *bound, self.config.batch]
        ).fetchall()
        if rows:
            last = rows[-1]
            self.key = (last[11], str(last[0]), last[1])
        if self._swept_to is None and rows:
            self._swept_to = rows[0][11]
        if self._swept_to is not None and time.monotonic() - self._sweep_at >= self.config.sweep_s:
            self._sweep_at = time.monotonic()
            upto = self.key[0] - self.config.lookback
            if upto > self._swept_to:
                states = self.tracker.states()
                query, bound = self._ts_bound(_SWEEP, self._swept_to)
                late = self.conn.execute(
                    query,
                    [
                        [st.vehicle_id for st in states],
                        [utc(st.ts) for st in states],
                        self._swept_to,
                        upto,
                        *bound,
                    ],
                ).fetchall()
                self._swept_to = upto
                if late:
                    log.info(L_("%d late-committed telemetry rows picked up"), len(late))
                rows = late + rows
        return self._process(rows)

    def _process(self, rows: list[tuple[object, ...]]) -> int:
        changed: dict[str, tuple[VehicleState, datetime]] = {}
        events: list[Event] = []
        newest = self.cursor
        for row in rows:
            received = row[11]
            assert isinstance(received, datetime)
            newest = max(newest, received)
            before = self.tracker.state(str(row[0]))
            try:
                state, evs = self.tracker.process(fix_from_row(row))
            except Exception:  # one bad fix must not stop the fleet's tracking
                log.exception(L_("fix skipped: vehicle %s at %s"), row[0], row[1])
                self.metrics.errors.labels("fix").inc()
                continue
            if state is before:
                continue  # seen already
            self.metrics.fixes.inc()
            changed[state.vehicle_id] = (state, received)
            if self.written_up_to is None or received > self.written_up_to:
                events.extend(evs)
        # Offline needs the wall clock: only once caught up with live data.
        caught_up = len(rows) < self.config.batch and (
            self.written_up_to is None or newest > self.written_up_to
        )
        offline = self.tracker.tick(self.clock()) if caught_up else []
        events.extend(offline)
        for ev in offline:
            st = self.tracker.state(ev.vehicle_id)
            if st is not None:
                changed[st.vehicle_id] = (st, newest)
        # Writes that failed last time go first (the tracker has already moved past them).
        pending_changed, pending_events = self._pending
        changed = {**pending_changed, **changed}
        events = pending_events + events
        if changed or events or newest > self.cursor:
            self._pending = (changed, events)
            self._write(changed, events, newest)
            self._pending = ({}, [])
        self.cursor = newest
        return len(rows)

    def _operator(self, route_id: str | None) -> str | None:
        return self.schedule.routes.get(route_id) if route_id else None

    def _write(
        self,
        changed: dict[str, tuple[VehicleState, datetime]],
        events: list[Event],
        newest: datetime,
    ) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            if changed:
                cur.executemany(
                    _UPSERT,
                    [
                        (
                            s.vehicle_id,
                            utc(s.ts),
                            s.lat,
                            s.lon,
                            s.speed_mps,
                            s.heading_deg,
                            s.mode,
                            s.status,
                            s.trip_id,
                            s.route_id,
                            s.direction_id,
                            s.service_date,
                            self._operator(s.route_id),
                            s.dist_along_m,
                            s.offset_m,
                            s.next_stop_id,
                            s.next_stop_sequence,
                            s.delay_s,
                            received,
                        )
                        for s, received in changed.values()
                    ],
                )
            if events:
                cur.executemany(
                    _INSERT_EVENT,
                    [
                        (
                            e.vehicle_id,
                            utc(e.ts),
                            e.type,
                            e.stop_id or "",
                            e.trip_id,
                            e.route_id,
                            self._direction(e.trip_id),
                            self._operator(e.route_id),
                            e.stop_sequence,
                            e.service_date,
                            utc(e.scheduled_ts) if e.scheduled_ts is not None else None,
                            e.delay_s,
                            e.dwell_s,
                            Jsonb(e.detail),
                        )
                        for e in events
                    ],
                )
            cur.execute(
                "INSERT INTO mobility_worker_cursor (name, received_at) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET received_at = GREATEST("
                " mobility_worker_cursor.received_at, EXCLUDED.received_at), updated_at = now()",
                [CURSOR, newest],
            )
        now = time.time()
        for state, received in changed.values():
            self.metrics.latency.observe(max(0.0, now - received.timestamp()))
            if state.status != "offline":
                self.metrics.message_to_state.observe(max(0.0, now - state.ts))
        for e in events:
            self.metrics.events.labels(e.type).inc()
        counts: dict[str, int] = {}
        for st in self.tracker.states():
            counts[st.status] = counts.get(st.status, 0) + 1
        for status in ("in_transit", "stopped_at", "off_route", "layover", "offline"):
            self.metrics.vehicles.labels(status).set(counts.get(status, 0))

    def _direction(self, trip_id: str | None) -> int | None:
        plan = self.schedule.trips.get(trip_id) if trip_id else None
        return plan.direction_id if plan else None

    def predictions_once(self) -> None:
        """Learn from new stop events, sample the predictions issued now, score earlier
        ones (mobility.predictions). Failures are logged, never fatal to the tracking."""
        from mobility.predictions import accuracy, store

        self._predictions_at = time.monotonic()
        try:
            store.refresh(self.conn, self.config.prediction_window)
            now = utc(self.clock())
            accuracy.sample(self.conn, now)
            accuracy.score(self.conn, now)
        except psycopg.Error:
            log.exception(L_("arrival predictions: learning or sampling failed"))
            self.metrics.errors.labels("predictions").inc()

    def _maybe_predictions(self) -> None:
        every = self.config.predictions_s
        if every > 0 and time.monotonic() - self._predictions_at >= every:
            self.predictions_once()

    def run(self) -> None:
        """Poll until :meth:`stop`; database errors are logged and retried, never fatal."""
        log.info(L_("mobility worker started (feed version %s)"), self.schedule.version)
        while not self._stop.is_set():
            try:
                self._maybe_reload_feed()
                n = self.run_once()
                self._maybe_predictions()
            except psycopg.OperationalError:
                log.exception(L_("database unavailable; retrying"))
                self.metrics.errors.labels("database").inc()
                self._stop.wait(2.0)
                try:
                    self.conn.close()
                    self.conn = psycopg.connect(self.url, autocommit=True)
                except psycopg.OperationalError:
                    continue
                continue
            except psycopg.Error:
                log.exception(L_("database error; retrying the batch's writes"))
                self.metrics.errors.labels("database").inc()
                self._stop.wait(2.0)
                continue
            if n < self.config.batch:
                self._stop.wait(self.config.poll_s)

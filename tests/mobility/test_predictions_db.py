"""The predictions' adapters on a real PostgreSQL: the incremental rollup agrees with the
pure learner, the GTFS-RT trip updates and the stop arrivals come from the engine."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from google.transit import gtfs_realtime_pb2 as rt
from typer.testing import CliRunner

from api.app import create_app
from api.keys import create_api_key
from core.geo import distance_m
from core.roles import role_url
from core.settings import Settings, get_settings
from mobility.cli import app as mobility_cli
from mobility.gtfs.importer import import_feed
from mobility.predictions.accuracy import accuracy_report, load_accuracy, sample, score
from mobility.predictions.evaluate import simulate
from mobility.predictions.live import forget_model
from mobility.predictions.model import TRAVEL, learn
from mobility.predictions.scoring import bin_index, is_accurate
from mobility.predictions.sim import Block, bundled_network, observations
from mobility.predictions.store import load_rows, refresh
from mobility.vehicles.schedule import (
    StopOnTrip,
    TripPlan,
    load_schedule,
    local_date,
    service_day_epoch,
)
from tests.mobility.feeds import REAL_FEED
from tests.mobility.gtfs_rt_rules import check_trip_updates
from tests.mobility.test_http import AGENCY, _static_feed, _trip_running_now

_COLS = (
    "vehicle_id, ts, type, stop_id, trip_id, route_id, direction_id, operator_id,"
    " stop_sequence, service_date, scheduled_ts, delay_s, dwell_s"
)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def write_events(conn: psycopg.Connection, blocks: Sequence[Block], day: date, tag: str) -> int:
    """The simulated day's stop events as the tracker would have stored them."""
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY vehicle_events ({_COLS}) FROM STDIN") as cp:
        for b in blocks:
            vid = f"{tag}-{b.vehicle_id}"
            for run in b.runs:
                tr = run.trip
                for j, s in enumerate(tr.stops):
                    a, d = run.arrivals[j], run.departures[j]
                    common = (
                        s.stop_id,
                        tr.trip_id,
                        tr.route_id,
                        tr.direction_id,
                        AGENCY,
                        s.sequence,
                        day,
                    )
                    cp.write_row(
                        (vid, _utc(a), "arrival", *common, _utc(s.arrival), a - s.arrival, None)
                    )
                    n += 1
                    if j < len(tr.stops) - 1:
                        cp.write_row(
                            (
                                vid,
                                _utc(d),
                                "departure",
                                *common,
                                _utc(s.departure),
                                d - s.departure,
                                d - a,
                            )
                        )
                        n += 1
    return n


def test_rollup_agrees_with_the_pure_learner_and_is_incremental(db_url: str) -> None:
    import_feed(db_url, REAL_FEED)
    net = bundled_network()
    today = local_date(time.time())
    days = [today - timedelta(days=k) for k in (9, 8)]
    sims = [simulate(net, d, 40 + i, 3) for i, d in enumerate(days)]
    with psycopg.connect(db_url, autocommit=True) as owner:
        write_events(owner, sims[0], days[0], "a")
    with psycopg.connect(role_url(db_url, "mobility"), autocommit=True) as conn:
        first = refresh(conn)
        assert first.observations > 500 and first.cells > 100
        assert refresh(conn).observations == 0  # nothing new: nothing learned twice
        with psycopg.connect(db_url, autocommit=True) as owner:
            write_events(owner, sims[1], days[1], "b")
        second = refresh(conn)
        trav_b, dw_b = observations(sims[1])
        assert second.observations == len(trav_b) + len(dw_b)
        stored = {
            (r.kind, r.route_id, r.direction_id, r.stop_id, r.to_stop_id, r.day, r.band): r
            for r in load_rows(conn)
        }
    trav, dw = [], []
    for blocks in sims:
        t, d = observations(blocks)
        trav += t
        dw += d
    expected = [r for r in learn(trav, dw) if r.kind == TRAVEL]
    assert len(expected) > 100
    for e in expected:
        got = stored[(e.kind, e.route_id, e.direction_id, e.stop_id, e.to_stop_id, e.day, e.band)]
        assert got.stat.n == e.stat.n
        assert got.stat.median == pytest.approx(e.stat.median, abs=1e-3)
        assert got.stat.p10 == pytest.approx(e.stat.p10, abs=1e-3)
        assert got.stat.p90 == pytest.approx(e.stat.p90, abs=1e-3)
        assert (got.ratio is None) == (e.ratio is None)
    dwell_cells = [k for k in stored if k[0] == "dwell"]
    assert dwell_cells and all(stored[k].stat.median >= 0 for k in dwell_cells)


def _stats(conn: psycopg.Connection) -> dict[tuple[Any, ...], Any]:
    return {
        (r.kind, r.route_id, r.direction_id, r.stop_id, r.to_stop_id, r.day, r.band): r
        for r in load_rows(conn)
    }


def test_observations_older_than_the_window_are_forgotten(db_url: str) -> None:
    """A refresh with a window that leaves out the older day: its observations are deleted,
    the statistics are those of the newer day alone, and a cell only the older day had is
    gone (a route that stopped running does not keep last season's times)."""
    import_feed(db_url, REAL_FEED)
    net = bundled_network()
    today = local_date(time.time())
    days = [today - timedelta(days=k) for k in (9, 8)]
    # Different fleets on the two days, so some cells exist on the older day only.
    sims = [simulate(net, days[0], 41, 3), simulate(net, days[1], 7, 2)]
    with psycopg.connect(db_url, autocommit=True) as owner:
        owner.execute("TRUNCATE vehicle_events, mobility_prediction_obs, mobility_prediction_stats")
        owner.execute("DELETE FROM mobility_prediction_watermark")
        write_events(owner, sims[0], days[0], "old")
        write_events(owner, sims[1], days[1], "new")
    # The window ends at 03:00 (Asia/Tokyo) of the newer day: the older day is all before it.
    boundary = datetime.combine(days[1], datetime.min.time(), tzinfo=UTC) - timedelta(hours=6)
    window = datetime.now(UTC) - boundary
    with psycopg.connect(role_url(db_url, "mobility"), autocommit=True) as conn:
        refresh(conn)  # the default eight weeks: both days learned
        both = _stats(conn)
        forgot = refresh(conn, window)
        assert forgot.observations == 0 and forgot.cells > 0
        left = _stats(conn)
        (oldest,) = conn.execute("SELECT min(ts) FROM mobility_prediction_obs").fetchone() or (
            None,
        )
    trav_b, dw_b = observations(sims[1])
    expected = {
        (e.kind, e.route_id, e.direction_id, e.stop_id, e.to_stop_id, e.day, e.band): e
        for e in learn(trav_b, dw_b)
        if e.kind == TRAVEL
    }
    assert oldest is not None and oldest >= boundary
    travel_left = {k: v for k, v in left.items() if k[0] == TRAVEL}
    assert travel_left.keys() == expected.keys()
    for k, e in expected.items():
        assert travel_left[k].stat.n == e.stat.n
        assert travel_left[k].stat.median == pytest.approx(e.stat.median, abs=1e-3)
    assert set(both) - set(left), "no cell was only the older day's: the test proves nothing"


# -- live: trip updates and stop arrivals from the engine ------------------------------


@pytest.fixture(scope="module")
def live(db_url: str) -> dict[str, Any]:
    """A bus on a trip re-timed to run now, in transit between its 5th and 6th stops, and
    a second trip re-timed to start in 20 minutes with no bus yet."""
    import_feed(db_url, REAL_FEED)
    now = time.time()
    with psycopg.connect(db_url, autocommit=True) as conn:
        plan = _trip_running_now(conn, load_schedule(conn), now)
        day = local_date(now - 600)
        if now - 600 - service_day_epoch(day) < 0:
            day -= timedelta(days=1)
        day0 = service_day_epoch(day)
        k = 5
        prev, nxt = plan.stops[k - 1], plan.stops[k]
        lat, lon = (prev.lat + nxt.lat) / 2, (prev.lon + nxt.lon) / 2
        conn.execute(
            "INSERT INTO vehicle_state (vehicle_id, ts, lat, lon, speed_mps, status, trip_id,"
            " route_id, direction_id, service_date, operator_id, next_stop_id,"
            " next_stop_sequence, delay_s) VALUES ('bus-p', %s, %s, %s, 6, 'in_transit', %s,"
            " %s, %s, %s, %s, %s, %s, 30)",
            [
                _utc(now - 2),
                lat,
                lon,
                plan.trip_id,
                plan.route_id,
                plan.direction_id,
                day,
                AGENCY,
                nxt.stop_id,
                nxt.sequence,
            ],
        )
        later = _second_trip(conn, plan, day, now)
        follow = _follow_trip(conn, plan, day, {later.trip_id})
        keys = {
            "own": create_api_key(conn, "operator", AGENCY, "test"),
            "other": create_api_key(conn, "operator", "other-operator", "test"),
        }
    return {
        "plan": plan,
        "later": later,
        "follow": follow,
        "keys": keys,
        "day0": day0,
        "k": k,
    }


def _second_trip(conn: psycopg.Connection, plan: TripPlan, day: date, now: float) -> TripPlan:
    sched = load_schedule(conn)
    day0 = service_day_epoch(day)
    active = sched.active_services(day)
    other = next(
        p
        for p in sched.trips.values()
        if p.trip_id != plan.trip_id
        and p.service_id in active
        and p.stops[0].stop_id not in {s.stop_id for s in plan.stops}
        and _apart(p.stops[0], plan.stops[-1]) > 2000
    )
    shift = round(now + 1200 - day0) - other.start_s
    conn.execute(
        "UPDATE gtfs_stop_times SET arrival_s = arrival_s + %s, departure_s = departure_s + %s"
        " WHERE feed_version = gtfs_current_version() AND trip_id = %s",
        [shift, shift, other.trip_id],
    )
    return load_schedule(conn).trips[other.trip_id]


def _apart(a: StopOnTrip, b: StopOnTrip) -> float:
    return distance_m(a.lat, a.lon, b.lat, b.lon)


def _follow_trip(conn: psycopg.Connection, plan: TripPlan, day: date, taken: set[str]) -> TripPlan:
    """A trip from where ``plan`` ends, re-timed to leave 130 s after ``plan``'s
    timetabled end: the bus that runs ``plan`` will run it next (a block)."""
    sched = load_schedule(conn)
    active = sched.active_services(day)
    nxt = next(
        p
        for p in sched.trips.values()
        if p.trip_id != plan.trip_id
        and p.trip_id not in taken
        and p.service_id in active
        and _apart(p.stops[0], plan.stops[-1]) <= 300
    )
    shift = plan.end_s + 130 - nxt.start_s
    conn.execute(
        "UPDATE gtfs_stop_times SET arrival_s = arrival_s + %s, departure_s = departure_s + %s"
        " WHERE feed_version = gtfs_current_version() AND trip_id = %s",
        [shift, shift, nxt.trip_id],
    )
    return load_schedule(conn).trips[nxt.trip_id]


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str) -> Iterator[TestClient]:
    api = settings.model_copy(update={"database_url": role_url(db_url, "api")})
    with TestClient(create_app(api), raise_server_exceptions=False) as c:
        yield c


def _learn_slow_segment(db_url: str, plan: TripPlan, k: int, seconds: float) -> None:
    """Statistics saying segment k -> k+1 takes ``seconds`` at every hour (spread 40 s),
    replacing whatever an earlier test of the module learned for that cell (its count,
    spread and timetable ratio would otherwise still shape the estimate)."""
    a, b = plan.stops[k], plan.stops[k + 1]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for day_type in (0, 1):
            for band in range(24):
                conn.execute(
                    "INSERT INTO mobility_prediction_stats (kind, route_id, direction_id,"
                    " stop_id, to_stop_id, day_type, band, n, median_s, p10_s, p90_s)"
                    " VALUES ('travel', %s, %s, %s, %s, %s, %s, 20, %s, %s, %s)"
                    " ON CONFLICT (kind, route_id, direction_id, stop_id, to_stop_id, day_type,"
                    " band) DO UPDATE SET n = EXCLUDED.n, median_s = EXCLUDED.median_s,"
                    " p10_s = EXCLUDED.p10_s, p90_s = EXCLUDED.p90_s, ratio = NULL",
                    [
                        plan.route_id,
                        plan.direction_id if plan.direction_id is not None else -1,
                        a.stop_id,
                        b.stop_id,
                        day_type,
                        band,
                        seconds,
                        seconds - 50,
                        seconds + 50,
                    ],
                )
    forget_model()


def _mine(client: TestClient) -> rt.TripUpdate:
    r = client.get("/gtfs-rt/trip-updates")
    assert r.status_code == 200
    feed = rt.FeedMessage()
    feed.ParseFromString(r.content)
    tu: rt.TripUpdate = next(
        e.trip_update for e in feed.entity if e.trip_update.vehicle.id == "bus-p"
    )
    return tu


def test_trip_updates_come_from_the_engine(
    client: TestClient, live: dict[str, Any], db_url: str
) -> None:
    plan: TripPlan = live["plan"]
    k = live["k"]
    forget_model()
    before = _mine(client)
    stus = list(before.stop_time_update)
    assert [s.stop_sequence for s in stus] == [s.sequence for s in plan.stops[k:]]
    now = time.time()
    last = 0
    for s in stus:
        assert s.arrival.time >= int(now) - 1 and s.departure.time >= s.arrival.time
        assert s.arrival.time > last
        last = s.departure.time
        assert s.arrival.uncertainty > 0 and s.departure.uncertainty > 0
    # the uncertainty grows along the trip (spreads add up)
    assert stus[-1].arrival.uncertainty > stus[0].arrival.uncertainty
    gap_before = stus[1].arrival.time - stus[0].departure.time
    _learn_slow_segment(db_url, plan, k, 900.0)
    after = list(_mine(client).stop_time_update)
    gap_after = after[1].arrival.time - after[0].departure.time
    assert gap_after == pytest.approx(900, abs=5), (gap_before, gap_after)
    assert after[1].arrival.uncertainty >= 30
    static = _static_feed(db_url)
    r = client.get("/gtfs-rt/trip-updates")
    feed = rt.FeedMessage()
    feed.ParseFromString(r.content)
    assert check_trip_updates(feed, static, time.time()) == []


def test_stop_arrivals_public_and_operator(
    client: TestClient, live: dict[str, Any], db_url: str
) -> None:
    plan: TripPlan = live["plan"]
    later: TripPlan = live["later"]
    k = live["k"]
    forget_model()
    stop = plan.stops[k + 2]
    feed_time = next(
        s.arrival.time for s in _mine(client).stop_time_update if s.stop_sequence == stop.sequence
    )
    r = client.get(f"/v1/stops/{stop.stop_id}/arrivals")  # no key: public
    assert r.status_code == 200
    rows = r.json()
    mine = next(x for x in rows if x["trip_id"] == plan.trip_id)
    assert mine["realtime"] is True and mine["vehicle_id"] == "bus-p"
    assert datetime.fromisoformat(mine["predicted"]).timestamp() == feed_time
    sched = live["day0"] + stop.arrival_s
    assert datetime.fromisoformat(mine["scheduled"]).timestamp() == sched
    assert mine["delay_s"] == feed_time - sched and mine["uncertainty_s"] > 0
    assert mine["route_name"] and mine["headsign"]
    assert datetime.fromisoformat(mine["predicted"]).utcoffset() == timedelta(hours=9)
    # the later trip, with no bus yet, at its timetable time
    first = later.stops[0]
    r = client.get(f"/v1/stops/{first.stop_id}/arrivals", params={"limit": 50})
    sched_rows = [x for x in r.json() if x["trip_id"] == later.trip_id]
    assert sched_rows and sched_rows[0]["realtime"] is False
    assert sched_rows[0]["delay_s"] is None and sched_rows[0]["vehicle_id"] is None
    assert datetime.fromisoformat(sched_rows[0]["predicted"]).timestamp() == (
        live["day0"] + first.arrival_s
    )
    times = [x["predicted"] for x in r.json()]
    assert times == sorted(times)
    missing = client.get("/v1/stops/no-such-stop/arrivals")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/stops/{stop.stop_id}/arrivals", params={"limit": 0}).status_code == 422
    keys = live["keys"]
    own = client.get(
        f"/v1/operators/{AGENCY}/stops/{stop.stop_id}/arrivals", headers={"X-API-Key": keys["own"]}
    )
    assert own.status_code == 200 and any(x["trip_id"] == plan.trip_id for x in own.json())
    other = client.get(
        f"/v1/operators/{AGENCY}/stops/{stop.stop_id}/arrivals",
        headers={"X-API-Key": keys["other"]},
    )
    assert other.status_code == 404
    assert client.get(f"/v1/operators/{AGENCY}/stops/{stop.stop_id}/arrivals").status_code == 401


def test_accuracy_sampled_scored_and_reported(
    live: dict[str, Any], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan: TripPlan = live["plan"]
    forget_model()
    now = datetime.now(UTC)
    with psycopg.connect(role_url(db_url, "mobility"), autocommit=True) as conn:
        assert sample(conn, now) >= 3
        assert sample(conn, now) == 0  # once per vehicle, stop and minute
        rows = conn.execute(
            "SELECT stop_sequence, stop_id, predicted_at, horizon_s FROM"
            " mobility_prediction_samples WHERE vehicle_id = 'bus-p' ORDER BY stop_sequence"
        ).fetchall()
    assert all(0 <= r[3] <= 1800 for r in rows)
    assert rows[0][0] == plan.stops[live["k"]].sequence
    offsets = [20.0, -100.0, 400.0]
    day = local_date(live["day0"] + 3600)
    with psycopg.connect(db_url, autocommit=True) as owner:
        for (seq, stop_id, predicted, _h), off in zip(rows, offsets, strict=False):
            owner.execute(
                "INSERT INTO vehicle_events (vehicle_id, ts, type, stop_id, trip_id, route_id,"
                " stop_sequence, service_date) VALUES ('bus-p', %s, 'arrival', %s, %s, %s, %s, %s)",
                [
                    predicted + timedelta(seconds=off),
                    stop_id,
                    plan.trip_id,
                    plan.route_id,
                    seq,
                    day,
                ],
            )
    with psycopg.connect(role_url(db_url, "mobility"), autocommit=True) as conn:
        assert score(conn, now) == 3
        scored = conn.execute(
            "SELECT error_s, horizon_s FROM mobility_prediction_samples"
            " WHERE error_s IS NOT NULL ORDER BY stop_sequence"
        ).fetchall()
        assert [round(e) for e, _ in scored] == [20, -100, 400]
        acc = load_accuracy(conn, now - timedelta(hours=1), now + timedelta(hours=1))
    expected_ok = sum(bool(is_accurate(h, e)) for e, h in scored)
    total = acc.total[0]
    assert total.n == 3 and sum(c.accurate for c in total.cells) == expected_ok
    assert [ln.n for ln in acc.by_route] == [3] and len(acc.by_hour) >= 1
    for _e, h in scored:
        cell = total.cells[bin_index(h) or 0]
        assert cell.n >= 1 and cell.mae is not None
    ja = "\n".join(accuracy_report(acc, "ja"))
    assert "系統別の的中率" in ja and "時間帯別の的中率" in ja and "先行時間別の誤差" in ja
    assert "Share accurate by route" in "\n".join(accuracy_report(acc, "en"))
    # what Grafana sees
    with psycopg.connect(role_url(db_url, "grafana"), autocommit=True) as g:
        got = g.execute(
            "SELECT sum(predictions), sum(accurate) FROM grafana.mobility_prediction_accuracy"
        ).fetchone()
    assert got == (3, expected_ok)
    # the CLI, Japanese first
    monkeypatch.setenv("MEBUKU_DATABASE_URL", db_url)
    monkeypatch.delenv("MEBUKU_LANG", raising=False)
    monkeypatch.setenv("LANG", "C")
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(mobility_cli, ["accuracy", "--days", "1"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "系統別の的中率" in out.output and "| 3 |" in out.output.replace(",", "")


def test_next_trip_after_the_layover_is_predicted(client: TestClient, live: dict[str, Any]) -> None:
    follow: TripPlan = live["follow"]
    forget_model()
    end = list(_mine(client).stop_time_update)[-1].arrival.time
    first = follow.stops[0]
    r = client.get(f"/v1/stops/{first.stop_id}/arrivals", params={"limit": 50})
    rows = [x for x in r.json() if x["trip_id"] == follow.trip_id]
    assert rows, r.json()
    row = rows[0]
    assert row["realtime"] is True and row["vehicle_id"] == "bus-p"
    sched = live["day0"] + first.departure_s
    expected = max(sched, end + 120)
    assert abs(datetime.fromisoformat(row["predicted"]).timestamp() - expected) <= 2
    assert row["uncertainty_s"] is not None

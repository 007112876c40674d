"""Poison-proof ingest: no message, however hostile, stops the writer or the worker.

The property test drives the real parser and writer against the real database with
generated JSON documents, plus items that bypass the parser (rows a buggy or future
parser could produce), and proves each message ends up stored or rejected, and the
valid ones around it stored exactly once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import drop_database
from core.settings import Settings
from ingest.fields import Limits
from ingest.parse import parse_message
from ingest.rows import TABLES, TELEMETRY, Rows
from ingest.simulate.publisher import Publisher
from ingest.worker import Inbound, IngestWorker, WorkerConfig, parse_item
from ingest.writer import Item, classify, clean_text, prepare, write_batch
from tests.conftest import new_database
from tests.ingest.helpers import wait_until

NOW = datetime.now(UTC)
BASE = NOW - timedelta(hours=1)

# --- generated documents -------------------------------------------------------------

LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff", "x\ud83d"])
NUL_TEXT = st.sampled_from(["\x00", "a\x00b", "trip\x00"])
HUGE_INTS = st.sampled_from([2**63, -(2**63) - 1, 10**400, 2**31, 70000, -1])
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308])


def nested(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = [doc]
    return doc


HOSTILE_VALUES = st.one_of(
    LONE_SURROGATES,
    NUL_TEXT,
    HUGE_INTS,
    NON_FINITE,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.sampled_from([nested(50), nested(5000)]),
)

FIELDS = {
    "telemetry": [c for c in TELEMETRY.columns if c != "vehicle_id"],
    "event": ["ts", "type", "cause", "detail"],
    "radio": [c for c in TABLES["fiveg_radio"].columns if c not in ("site_id", "device_id")],
}


def valid_doc(kind: str, i: int) -> dict[str, Any]:
    ms = int((BASE + timedelta(seconds=i)).timestamp() * 1000)
    if kind == "telemetry":
        return {"ts": ms, "seq": i, "lat": 36.39, "lon": 139.06, "trip_id": "t1"}
    if kind == "event":
        return {"ts": ms, "type": "door_open", "detail": {"note": "ok"}}
    if kind == "radio":
        return {"ts": ms, "rsrp_dbm": -90.0, "sinr_db": 12.0, "band": "n79"}
    return {"bn": "urn:dev:x:", "bt": ms / 1000, "e": [{"n": "temp", "u": "Cel", "v": 21.5}]}


@st.composite
def hostile_message(draw: st.DrawFn, i: int, vid: str) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["telemetry", "event", "radio", "senml"]))
    doc: Any = valid_doc(kind, i)
    how = draw(st.sampled_from(["field", "field", "senml", "whole", "raw"]))
    if how == "field" and kind in FIELDS:
        for key in draw(st.lists(st.sampled_from(FIELDS[kind]), min_size=1, max_size=3)):
            doc[key] = draw(HOSTILE_VALUES)
    elif how == "senml" or kind == "senml":
        rec = {
            draw(st.sampled_from(["n", "u", "v", "vs", "vb", "vd", "t", "s", "bn"])): draw(
                HOSTILE_VALUES
            )
        }
        doc = [{"bn": "urn:dev:x:", "bt": BASE.timestamp() + i}, {"n": "temp", "v": 1.0, **rec}]
    elif how == "whole":
        doc = draw(HOSTILE_VALUES)
    topic = {
        "telemetry": f"maebashi/bus/{vid}/telemetry",
        "event": f"maebashi/bus/{vid}/event",
        "radio": f"maebashi/5g/s1/{vid}/radio",
        "senml": f"maebashi/5g/s1/{vid}/senml",
    }[kind]
    if how == "raw":
        return topic, draw(st.sampled_from([b"\xff\xfe", b'{"ts": 1', b"", b"\x00" * 8]))
    try:
        text = json.dumps(doc, allow_nan=True)  # lone surrogates become "\ud800" escapes
    except (ValueError, RecursionError):
        text = "[" * 5000 + "]" * 5000
    return topic, text.encode()


def bypass_items(vid: str, start: int) -> list[Item]:
    """Rows the parser would never produce: each must be dead-lettered by the writer."""

    def row(i: int, **over: Any) -> tuple[Any, ...]:
        base: dict[str, Any] = {
            "vehicle_id": vid,
            "ts": BASE + timedelta(seconds=start + i),
            "seq": i,
            "lat": 36.4,
            "lon": 139.07,
            "speed_mps": 1.0,
            "heading_deg": 10.0,
            "odometer_m": 0.0,
            "mode": "manual",
            "door_open": False,
            "passengers": 3,
            "trip_id": None,
            "route_id": None,
            "soc_pct": 50.0,
        }
        base.update(over)
        return tuple(base[c] for c in TELEMETRY.columns)

    bad: list[tuple[Any, ...]] = [
        row(0, trip_id="\ud800"),  # UnicodeEncodeError in the driver
        row(1, route_id="a\x00b"),  # NUL: refused by PostgreSQL text
        row(2, passengers=70000),  # smallint overflow (22003)
        row(3, lat="not a number"),  # 22P02
        row(4, mode={"a": 1}),  # the driver cannot adapt a dict
        row(5, ts="yesterday-ish"),  # 22007
        row(6)[:5],  # a row building bug: too few columns
        (*row(7), "extra"),  # too many
    ]
    topic = f"maebashi/bus/{vid}/telemetry"
    return [
        Item(topic, f"bypass-{vid}-{k}".encode(), Rows(TELEMETRY, [r])) for k, r in enumerate(bad)
    ]


@pytest.fixture(scope="module")
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as c:
        prepare(c)
        c.commit()
        yield c


def outcome(c: psycopg.Connection, it: Item) -> str:
    """'stored', 'rejected' or 'missing' for one item."""
    sha = hashlib.sha256(it.payload).digest()
    rej = c.execute(
        "SELECT reason FROM ingest_rejects WHERE topic = %s AND payload_sha256 = %s",
        [clean_text(it.topic), sha],
    ).fetchone()
    if rej is not None:
        assert rej[0], "a reject needs a reason"
        return "rejected"
    if isinstance(it.parsed, Rows):
        t = it.parsed.table
        idx = [t.columns.index(k) for k in t.key]
        for r in it.parsed.rows:
            where = " AND ".join(f"{k} = %s" for k in t.key)
            n = c.execute(f"SELECT count(*) FROM {t.name} WHERE {where}", [r[i] for i in idx])
            if n.fetchone() != (1,):
                return "missing"
        return "stored"
    return "missing"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_every_message_is_stored_or_rejected_never_stuck(conn: psycopg.Connection, data: Any):
    vid = f"p{uuid.uuid4().hex[:10]}"
    n = data.draw(st.integers(1, 12))
    hostile = [data.draw(hostile_message(i, vid)) for i in range(n)]
    good = [
        (f"maebashi/bus/{vid}/telemetry", json.dumps(valid_doc("telemetry", 1000 + k)).encode())
        for k in range(5)
    ]
    msgs = data.draw(st.permutations([*hostile, *good]))
    # the worker's own path: parse_item turns a parser crash into a parser_error reject
    items = [parse_item(Inbound(t, p, 0, 1, NOW.timestamp(), 0, len(p))) for t, p in msgs]
    if data.draw(st.booleans()):
        items += bypass_items(vid, 2000)
        items = data.draw(st.permutations(items))
    res = write_batch(conn, items)  # must return: raising would mean "retry forever"
    seen = {id(it): outcome(conn, it) for it in items}
    assert "missing" not in seen.values(), [
        (it.topic, it.payload[:80], it.parsed) for it in items if seen[id(it)] == "missing"
    ]
    for _t, p in good:  # the valid ones around the poison: stored, exactly once
        ts = BASE + timedelta(seconds=json.loads(p)["ts"] / 1000 - BASE.timestamp())
        row = conn.execute(
            "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s AND ts = %s", [vid, ts]
        ).fetchone()
        assert row == (1,)
    # a redelivery of the whole batch changes nothing
    again = write_batch(conn, items)
    assert sum(again.inserted.values()) == 0
    assert sum(res.inserted.values()) >= len(good)


def test_bypass_rows_are_each_rejected_with_a_reason(conn: psycopg.Connection):
    vid = f"b{uuid.uuid4().hex[:8]}"
    bad = bypass_items(vid, 0)
    good = [
        Item(
            f"maebashi/bus/{vid}/telemetry",
            p,
            parse_message(f"maebashi/bus/{vid}/telemetry", p, NOW),
        )
        for p in (json.dumps(valid_doc("telemetry", 500 + k)).encode() for k in range(20))
    ]
    res = write_batch(conn, [*good[:10], *bad, *good[10:]])
    assert res.inserted["bus_telemetry"] == 20
    reasons: dict[str, str] = dict(
        conn.execute(
            "SELECT convert_from(payload, 'UTF8'), reason FROM ingest_rejects"
            " WHERE topic = %s AND payload_size IS NOT NULL",
            [f"maebashi/bus/{vid}/telemetry"],
        ).fetchall()
    )
    assert len(reasons) == len(bad)
    assert reasons[f"bypass-{vid}-0"].startswith("write_error: UnicodeEncodeError")
    assert reasons[f"bypass-{vid}-2"].startswith("db_refused: 22003")
    assert reasons[f"bypass-{vid}-3"].startswith("db_refused: 22P02")
    assert all(r.split(":")[0] in ("write_error", "db_refused") for r in reasons.values())


def test_classify_by_what_failed():
    assert classify(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates")) == "split"
    assert classify(TypeError("row building bug")) == "split"
    assert classify(psycopg.ProgrammingError("cannot adapt type 'dict'")) == "split"
    assert classify(psycopg.errors.NumericValueOutOfRange()) == "split"
    assert classify(psycopg.errors.CharacterNotInRepertoire()) == "split"
    assert classify(psycopg.errors.AdminShutdown()) == "retry"  # 57P01
    assert classify(psycopg.errors.CrashShutdown()) == "retry"  # 57P02
    assert classify(psycopg.errors.CannotConnectNow()) == "retry"  # 57P03
    assert classify(psycopg.errors.SerializationFailure()) == "retry"  # 40001
    assert classify(psycopg.errors.DeadlockDetected()) == "retry"  # 40P01
    assert classify(psycopg.errors.TooManyConnections()) == "retry"  # 53300
    assert classify(psycopg.OperationalError("connection refused")) == "retry"
    assert classify(psycopg.InterfaceError("the connection is closed")) == "retry"
    assert classify(ConnectionResetError()) == "retry"


# --- through a real Mosquitto and the real worker -----------------------------------------


@pytest.fixture
def own_db(pg_server, migrated_template) -> Iterator[str]:
    name = new_database(pg_server, migrated_template)
    yield pg_server.url(name)
    drop_database(pg_server.url(), name)


def start_worker(settings: Settings, db: str, **kw: Any) -> IngestWorker:
    name = uuid.uuid4().hex[:8]
    w = IngestWorker(
        WorkerConfig(
            database_url=db,
            mqtt=settings.mqtt,
            client_id=f"test-poison-{name}",
            group="",
            topic_filter=f"maebashi/+/{name}/#",
            session_expiry=60,
            **kw,
        )
    )
    w.start()
    assert w.subscribed.wait(10)
    w.test_segment = name  # type: ignore[attr-defined]
    return w


def telemetry(vid: str, i: int, **extra: Any) -> bytes:
    ms = int((BASE + timedelta(seconds=i)).timestamp() * 1000)
    return json.dumps({"ts": ms, "seq": i, "lat": 36.39, "lon": 139.06, **extra}).encode()


def count(db: str, sql: str, *args: Any) -> int:
    with psycopg.connect(db, autocommit=True) as c:
        row = c.execute(sql, list(args)).fetchone()
    return int(row[0]) if row else 0


def test_lone_surrogate_among_1000_valid_messages(settings: Settings, own_db: str):
    w = start_worker(settings, own_db, batch_size=200)
    vid = w.test_segment  # type: ignore[attr-defined]
    topic = f"maebashi/bus/{vid}/telemetry"
    poison = b'{"ts": %d, "lat": 36.39, "lon": 139.06, "trip_id": "\\ud800"}' % int(
        (BASE + timedelta(seconds=500.5)).timestamp() * 1000
    )
    try:
        with Publisher(settings.mqtt) as pub:
            for i in range(1000):
                pub.publish(topic, telemetry(vid, i))
                if i == 500:
                    pub.publish(topic, poison)
        stored = "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s"
        assert wait_until(lambda: count(own_db, stored, vid) == 1000, 60), count(
            own_db, stored, vid
        )
        rejected = "SELECT count(*) FROM ingest_rejects WHERE payload = %s"
        assert wait_until(lambda: count(own_db, rejected, poison) == 1, 10)
        with psycopg.connect(own_db) as c:
            (reason,) = c.execute(
                "SELECT reason FROM ingest_rejects WHERE payload = %s", [poison]
            ).fetchone() or ("",)
        assert reason and ("surrogate" in reason.lower() or "UnicodeEncodeError" in reason)
        # the worker still acknowledges: one more message goes through
        with Publisher(settings.mqtt) as pub:
            pub.publish(topic, telemetry(vid, 1500))
        assert wait_until(lambda: count(own_db, stored, vid) == 1001, 30)
        assert wait_until(lambda: w.acked == 1002, 10), w.acked
    finally:
        w.stop()


def test_writer_process_isolates_a_row_that_bypasses_the_parser(
    own_db: str, monkeypatch: pytest.MonkeyPatch
):
    """Even if a parser bug lets an unstorable row through, the writer splits it out.

    The worker parses in its writer process (``ingest.pipeline``), where a monkeypatch
    of this process cannot reach, so this drives the writer's own batch step, ``Store.run``,
    against the real database: the row the driver cannot encode is dead-lettered as
    ``write_error``, the 300 around it are stored, and the batch reports its commit.
    """
    import ingest.pipeline as pipeline

    real = pipeline.parse_item

    def leaky(m: Inbound, max_payload: int = 262_144, limits: Limits | None = None) -> Item:
        it = real(m, max_payload, limits)
        if b"LEAK" in m.payload and isinstance(it.parsed, Rows):
            row = list(it.parsed.rows[0])
            row[TELEMETRY.columns.index("trip_id")] = "\ud800"
            return Item(it.topic, it.payload, Rows(TELEMETRY, [tuple(row)]))
        return it

    monkeypatch.setattr(pipeline, "parse_item", leaky)
    vid = uuid.uuid4().hex[:8]
    topic = f"maebashi/bus/{vid}/telemetry"
    bad = telemetry(vid, 2500, route_id="LEAK")
    payloads = [telemetry(vid, i) for i in range(300)]
    payloads.insert(151, bad)
    batch = [Inbound(topic, p, i, 1, NOW.timestamp(), 0, len(p)) for i, p in enumerate(payloads)]
    store = pipeline.Store(pipeline.StoreConfig(own_db), threading.Event())  # type: ignore[arg-type]
    try:
        summary = store.run(batch)
    finally:
        store.close()
    assert summary is not None and summary.result.splits > 0
    assert summary.result.inserted["bus_telemetry"] == 300
    assert summary.result.rejects == {"write_error": 1}
    assert summary.streams == {"telemetry": 301}
    assert sum(summary.lag_counts) == 301  # every message that parsed into rows
    stored = "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s"
    assert count(own_db, stored, vid) == 300
    reason = "SELECT count(*) FROM ingest_rejects WHERE payload = %s AND reason LIKE %s"
    assert count(own_db, reason, bad, "write_error: UnicodeEncodeError%") == 1


def test_retry_class_error_while_database_answers_is_poison_after_k_attempts(
    settings: Settings, own_db: str
):
    """A message that always fails with a "retry" SQLSTATE (here a trigger raising a
    serialization failure) must not stall ingestion: after K attempts with the database
    answering its health query, the batch is split and that message dead-lettered."""
    with psycopg.connect(own_db, autocommit=True) as c:
        c.execute(
            "CREATE FUNCTION poison_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.trip_id = 'always-retry' THEN RAISE EXCEPTION 'try again' USING"
            " ERRCODE = '40001'; END IF; RETURN NEW; END $$"
        )
        c.execute(
            "CREATE TRIGGER poison_guard BEFORE INSERT ON bus_telemetry"
            " FOR EACH ROW EXECUTE FUNCTION poison_guard()"
        )
    w = start_worker(settings, own_db, batch_size=100, poison_retries=3)
    vid = w.test_segment  # type: ignore[attr-defined]
    topic = f"maebashi/bus/{vid}/telemetry"
    bad = telemetry(vid, 2500, trip_id="always-retry")
    try:
        with Publisher(settings.mqtt) as pub:
            for i in range(200):
                pub.publish(topic, telemetry(vid, i))
                if i == 100:
                    pub.publish(topic, bad)
        stored = "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s"
        assert wait_until(lambda: count(own_db, stored, vid) == 200, 90), count(own_db, stored, vid)
        reason = "SELECT count(*) FROM ingest_rejects WHERE payload = %s AND reason LIKE %s"
        assert wait_until(lambda: count(own_db, reason, bad, "poison: %40001%") == 1, 10)
        assert wait_until(lambda: w.acked == 201, 10), w.acked
        assert (w.metrics.registry.get_sample_value("mebuku_ingest_poison_batches_total") or 0) >= 1
    finally:
        w.stop()

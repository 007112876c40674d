"""The worker against the session's real Mosquitto and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.db import drop_database
from core.roles import role_url
from core.settings import Settings
from ingest.rows import TELEMETRY, Reject, Rows
from ingest.simulate.city import City, CityConfig
from ingest.simulate.faults import Faults
from ingest.simulate.messages import SimMessage
from ingest.simulate.publisher import Publisher
from ingest.worker import IngestWorker, WorkerConfig
from ingest.writer import Item, classify, prepare, write_batch
from tests.conftest import new_database
from tests.ingest.helpers import assert_reconciled, counts, expected, reconciled, wait_until


@pytest.fixture
def own_db(pg_server, migrated_template):
    """A migrated database for one test, so reconciliation counts only its messages."""
    name = new_database(pg_server, migrated_template)
    yield pg_server.url(name)
    drop_database(pg_server.url(), name)


def worker_for(settings: Settings, **kw) -> IngestWorker:
    name = uuid.uuid4().hex[:8]
    cfg = WorkerConfig(
        # As deployed: the ingestor's own role (INSERT-only, core/roles/grants.toml).
        database_url=kw.pop("database_url", role_url(settings.require_database_url(), "ingest")),
        mqtt=settings.mqtt,
        client_id=f"test-ingest-{name}",
        group=f"g{name}",
        session_expiry=60,
        **kw,
    )
    return IngestWorker(cfg)


def city_messages(minutes: float, faults: Faults, seed: int = 3) -> list[SimMessage]:
    start = datetime.now(UTC) - timedelta(hours=2)
    cfg = CityConfig(shuttles=2, buses=4, faults=faults, seed=seed)
    return list(City(cfg, start).messages(start + timedelta(minutes=minutes)))


def test_all_streams_with_faults_reconcile_exactly(settings: Settings, own_db: str):
    db_url = own_db
    msgs = city_messages(8, Faults(duplicates=0.05, out_of_order=0.05, malformed=0.1))
    exp = expected(msgs)
    assert exp.sent > exp.distinct > 0 and len(exp.rejects) > 0
    assert all(
        exp.rows[t] > 0 for t in ("bus_telemetry", "bus_events", "fiveg_radio", "fiveg_sensor")
    )
    w = worker_for(settings, batch_size=500, database_url=db_url)
    w.start()
    assert w.subscribed.wait(10)
    try:
        with Publisher(settings.mqtt) as pub:
            pub.run(msgs, speed=0)
        assert wait_until(lambda: reconciled(db_url, exp), 60), counts(db_url)
    finally:
        w.stop()
    assert_reconciled(db_url, exp)
    reg = w.metrics.registry
    rejected = sum(
        reg.get_sample_value("mebuku_ingest_rejects_total", {"reason": r}) or 0
        for r in (
            "bad_json",
            "unknown_topic",
            "wrong_type",
            "out_of_range",
            "bad_senml",
            "bad_timestamp",
            "not_object",
        )
    )
    assert rejected >= len(exp.rejects)  # duplicates of a malformed message count again
    inserted = sum(w.totals.inserted.values())
    assert inserted == sum(exp.rows.values())
    assert sum(w.totals.duplicates.values()) > 0  # injected duplicates met ON CONFLICT


def test_database_refusal_is_isolated_to_one_message(db_url: str):
    now = datetime.now(UTC) - timedelta(minutes=5)
    good = [
        Item(
            "maebashi/bus/split/telemetry",
            f"g{i}".encode(),
            Rows(
                TELEMETRY,
                [
                    (
                        "split",
                        now + timedelta(seconds=i),
                        i,
                        36.4,
                        139.07,
                        1.0,
                        10.0,
                        0.0,
                        "manual",
                        False,
                        3,
                        None,
                        None,
                        50.0,
                    )
                ],
            ),
        )
        for i in range(9)
    ]
    # passes our parser's types but not the column: smallint overflow (SQLSTATE 22003)
    bad = Item(
        "maebashi/bus/split/telemetry",
        b"bad",
        Rows(
            TELEMETRY,
            [
                (
                    "split",
                    now - timedelta(seconds=1),
                    1,
                    36.4,
                    139.07,
                    1.0,
                    10.0,
                    0.0,
                    "manual",
                    False,
                    70000,
                    None,
                    None,
                    50.0,
                )
            ],
        ),
    )
    with psycopg.connect(db_url) as conn:
        prepare(conn)
        res = write_batch(conn, [*good[:4], bad, *good[4:]])
        assert res.inserted["bus_telemetry"] == 9
        assert res.rejects["db_refused"] == 1 and res.splits > 0
        reason = conn.execute("SELECT reason FROM ingest_rejects WHERE payload = 'bad'").fetchone()
        assert reason is not None and reason[0].startswith("db_refused: 22003")
        # a redelivery of the same batch changes nothing
        again = write_batch(conn, [*good[:4], bad, *good[4:]])
        assert again.inserted["bus_telemetry"] == 0
        assert conn.execute(
            "SELECT count(*) FROM ingest_rejects WHERE payload = 'bad'"
        ).fetchone() == (1,)
        conn.commit()


def test_classify_database_errors():
    assert classify(psycopg.errors.CheckViolation()) == "split"
    assert classify(psycopg.errors.NumericValueOutOfRange()) == "split"
    assert classify(psycopg.errors.UniqueViolation()) == "split"
    assert classify(psycopg.errors.AdminShutdown()) == "retry"
    assert classify(psycopg.errors.CannotConnectNow()) == "retry"
    assert classify(psycopg.OperationalError("connection lost")) == "retry"
    assert classify(psycopg.errors.UndefinedTable()) == "retry"
    assert classify(OSError("reset")) == "retry"


def test_reject_dataclass_reason():
    assert Reject("bad_json", "x").reason == "bad_json: x"


@pytest.mark.parametrize("qos", [0, 1])
def test_qos0_and_qos1_publishers_both_land(settings: Settings, db_url: str, qos: int):
    start = datetime.now(UTC) - timedelta(minutes=30 + qos)
    vid = f"q{qos}-{uuid.uuid4().hex[:6]}"
    msgs = [
        SimMessage(
            start + timedelta(seconds=i),
            f"maebashi/bus/{vid}/telemetry",
            f'{{"ts": {int((start + timedelta(seconds=i)).timestamp() * 1000)}, '
            f'"lat": 36.39, "lon": 139.07, "seq": {i}}}'.encode(),
            "telemetry",
        )
        for i in range(300)
    ]
    w = worker_for(settings)
    w.start()
    assert w.subscribed.wait(10)
    try:
        with Publisher(settings.mqtt, qos=qos) as pub:
            pub.run(msgs, speed=0)

        def stored() -> int:
            with psycopg.connect(db_url) as c:
                row = c.execute(
                    "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s", [vid]
                ).fetchone()
                return int(row[0]) if row else 0

        assert wait_until(lambda: stored() == 300, 30)
    finally:
        w.stop()


def test_two_workers_of_one_group_split_the_load(settings: Settings, own_db: str):
    db_url = own_db
    msgs = city_messages(5, Faults(malformed=0.05), seed=21)
    exp = expected(msgs)
    group = f"pair{uuid.uuid4().hex[:6]}"
    workers = []
    for k in range(2):
        cfg = WorkerConfig(
            database_url=db_url,
            mqtt=settings.mqtt,
            client_id=f"{group}-{k}",
            group=group,
            session_expiry=60,
        )
        workers.append(IngestWorker(cfg))
    for w in workers:
        w.start()
    try:
        assert all(w.subscribed.wait(10) for w in workers)
        with Publisher(settings.mqtt) as pub:
            pub.run(msgs, speed=0)
        assert wait_until(lambda: reconciled(db_url, exp), 60), counts(db_url)
    finally:
        for w in workers:
            w.stop()
    assert_reconciled(db_url, exp)
    shares = [w.acked for w in workers]
    assert all(s > 0 for s in shares), shares  # both took part

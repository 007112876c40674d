"""Issue 10, done when: through a real Mosquitto and the real `mebuku ingest` process, a
telemetry message with a lone surrogate and a SenML pack with t = 1e11 are rejected
while the 1,000 valid messages around them are all stored exactly once, across a kill -9
of the ingestor mid-stream.

Before the parser refused them, the lone surrogate failed inside the database driver and
the worker retried that batch forever: nothing after it was ever stored.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from core import migrator
from core.db import create_database
from core.embedded import EmbeddedMosquitto, EmbeddedPostgres, server_dir
from ingest.simulate.city import City, CityConfig
from ingest.simulate.messages import SimMessage
from tests.conftest import make_settings
from tests.ingest.helpers import assert_reconciled, counts, expected, reconciled, wait_until
from tests.ingest.test_recovery import Feeder, Ingestor, warm_up

pytestmark = pytest.mark.slow

VALID = 1000
LONE_SURROGATE = SimMessage(
    datetime.now(UTC),
    "maebashi/bus/poison-1/telemetry",
    # what a device puts on the wire: JSON text escaping a lone surrogate (valid UTF-8)
    b'{"ts": "%s", "lat": 36.39, "lon": 139.06, "trip_id": "\\ud800"}'
    % (datetime.now(UTC) - timedelta(minutes=5)).isoformat().encode(),
    "telemetry",
    valid=False,
)
YEAR_5138 = SimMessage(
    datetime.now(UTC),
    "maebashi/5g/campus/wx-poison/senml",
    b'[{"bn": "urn:dev:mebuku:wx-poison:", "n": "temp", "u": "Cel", "v": 9.8, "t": 1e11}]',
    "senml",
    valid=False,
)


@pytest.fixture(scope="module")
def pg() -> Iterator[EmbeddedPostgres]:
    root = server_dir("mebuku-poison-pg-")
    server = EmbeddedPostgres(root)
    try:  # stopped even when start or migrate fails
        server.start()
        create_database(server.url(), "tmpl")
        migrator.migrate(server.url("tmpl"), make_settings(server.url("tmpl")))
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db(pg: EmbeddedPostgres) -> str:
    name = f"p_{uuid.uuid4().hex[:10]}"
    create_database(pg.url(), name, template="tmpl")
    return pg.url(name)


@pytest.fixture
def broker() -> Iterator[EmbeddedMosquitto]:
    root = server_dir("mebuku-poison-mqtt-")
    b = EmbeddedMosquitto(root)
    try:
        b.start()
        yield b
    finally:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ingestor(db: str, broker: EmbeddedMosquitto, tmp_path: Path) -> Iterator[Ingestor]:
    # A plain subscription: Mosquitto 2.0's shared subscriptions are unreliable (README).
    ing = Ingestor(db, broker.url, tmp_path / "ingest.log", group="")
    try:
        yield ing
    finally:
        ing.stop()
        if ing.proc is not None and ing.proc.poll() is None:
            ing.kill()


def valid_stream() -> list[SimMessage]:
    """1,000 distinct valid messages of every kind from the city simulator, fault-free."""
    start = datetime.now(UTC) - timedelta(hours=2)
    city = City(CityConfig(shuttles=2, buses=6, seed=21), start)
    out: list[SimMessage] = []
    seen: set[tuple[str, bytes]] = set()
    for m in city.messages(start + timedelta(hours=1)):
        if m.valid and (m.topic, m.payload) not in seen:
            seen.add((m.topic, m.payload))
            out.append(m)
            if len(out) == VALID:
                break
    assert len(out) == VALID
    assert {m.kind for m in out} >= {"telemetry", "radio", "senml"}
    return out


def test_poison_messages_are_rejected_and_the_rest_stored_across_kill_9(
    db: str, broker: EmbeddedMosquitto, ingestor: Ingestor
) -> None:
    valid = valid_stream()
    msgs = [*valid[:300], LONE_SURROGATE, *valid[300:700], YEAR_5138, *valid[700:]]
    exp = expected(msgs)
    assert exp.rejects == {(m.topic, m.payload) for m in (LONE_SURROGATE, YEAR_5138)}
    assert sum(exp.rows.values()) >= VALID  # a SenML pack is one row per record

    warm_up(ingestor, db, broker.url, msgs[0])
    feeder = Feeder(broker.url, msgs[1:], rate=150)
    feeder.start()
    assert wait_until(lambda: sum(counts(db).values()) > 250, 60), ingestor.log.read_text()
    ingestor.kill()  # SIGKILL mid-stream: what was not committed stays with the broker
    assert wait_until(feeder.done.is_set, 60) and feeder.ok
    assert not reconciled(db, exp)
    ingestor.start()
    assert wait_until(lambda: reconciled(db, exp), 90), (counts(db), exp.rows)
    assert_reconciled(db, exp)  # every valid message stored once, exactly the 2 rejects

    with psycopg.connect(db, autocommit=True) as conn:
        rows = conn.execute("SELECT topic, reason FROM ingest_rejects").fetchall()
    reasons: dict[str, str] = dict(rows)
    assert reasons[LONE_SURROGATE.topic] == (
        "bad_text: trip_id: contains a lone surrogate U+D800 (not a Unicode scalar value)"
    )
    assert reasons[YEAR_5138.topic].startswith(
        "bad_timestamp: senml[0].t: 5138-11-16T09:46:40+00:00 is more than 300 s in the future"
    )
    assert ingestor.proc is not None and ingestor.proc.poll() is None

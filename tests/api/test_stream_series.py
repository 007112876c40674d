"""The series API answers for every stream of the catalogue (ingest/streams.py).

``ingest.messages.<table>`` is registered for each stream's table; on the simulator's
messages (written through the parser and the writer by ingest's panel seed) it counts
exactly the rows stored in the range, so a new stream is charted with no new code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from ingest.streams import STREAMS, Stream
from tests.support.credentials import Credentials
from tests.support.seed.ingest import seed


@pytest.fixture(scope="module")
def seeded(db_url: str) -> str:
    seed(db_url)
    return db_url


@pytest.mark.parametrize("stream", STREAMS, ids=[s.table.name for s in STREAMS])
def test_series_api_counts_every_stream(
    stream: Stream, seeded: str, client: TestClient, creds: Credentials
) -> None:
    name = f"ingest.messages.{stream.table.name}"
    listed = client.post("/grafana/metrics", headers=creds.headers("council"), json={}).json()
    assert {"label": name, "value": name} in listed
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    end = start + timedelta(hours=2)
    body = {
        "range": {
            "from": start.isoformat().replace("+00:00", "Z"),
            "to": end.isoformat().replace("+00:00", "Z"),
        },
        "intervalMs": 3_600_000,
        "maxDataPoints": 10,
        "targets": [{"target": name, "refId": "A"}],
    }
    r = client.post("/grafana/query", headers=creds.headers("council"), json=body)
    assert r.status_code == 200, r.text
    (series,) = r.json()
    with psycopg.connect(seeded) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE ts >= %s AND ts < %s").format(
                sql.Identifier(stream.table.name)
            ),
            [start, end],
        ).fetchone()
    assert row is not None and row[0] > 0, "the simulator publishes every stream"
    assert sum(v for v, _ in series["datapoints"]) == row[0]

"""Recent simulated rows of every stream plus some rejects, for the Grafana panel test.

Written with the ingest writer itself (COPY into staging + INSERT ... ON CONFLICT), so
seeding twice within a minute changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from ingest.parse import parse_message
from ingest.simulate.city import City, CityConfig
from ingest.simulate.faults import Faults
from ingest.streams import TABLES
from ingest.writer import Item, prepare, write_batch


def seed(url: str, minutes: int = 6) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes + 1)
    city = City(CityConfig(shuttles=2, buses=3, faults=Faults(malformed=0.03), seed=42), start)
    items = [
        Item(m.topic, m.payload, parse_message(m.topic, m.payload, m.ts + timedelta(seconds=1)))
        for m in city.messages(now - timedelta(minutes=1))
    ]
    with psycopg.connect(url) as conn:
        prepare(conn)
        write_batch(conn, items)
        # As if committed 0.2-0.8 s after each reading (the writer stamps the seed time).
        for table in TABLES:
            conn.execute(
                f"UPDATE {table} SET received_at = ts + (0.2 + random() * 0.6) * interval '1 s' "
                "WHERE ts >= %s AND received_at > ts + interval '2 s'",
                [start],
            )

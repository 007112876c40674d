"""Seed for the dashboard panel test: the three example trials, running now, with six
hours of simulated samples (one a minute per device) and a SenML sensor."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from fiveg import store
from fiveg.trial import TrialDefinition, load_definition

TRIALS_DIR = Path(__file__).resolve().parents[3] / "fiveg" / "trials"


def example_trials(now: datetime) -> list[TrialDefinition]:
    """The bundled trial files with their periods moved to cover [now - 1 day, now + 1 day)."""
    out = []
    for p in sorted(TRIALS_DIR.glob("*.toml")) + sorted(TRIALS_DIR.glob("*.json")):
        d = load_definition(p)
        out.append(
            d.model_copy(
                update={
                    "period_start": now - timedelta(days=1),
                    "period_end": now + timedelta(days=1),
                }
            )
        )
    return out


async def _save(url: str, trials: list[TrialDefinition]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for d in trials:
            await store.save_trial(conn, d)


def seed(url: str) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    trials = example_trials(now)
    asyncio.run(_save(url, trials))
    rng = random.Random(5)
    radio = []
    sensor = []
    status = []  # a heartbeat a minute per device, one in 40 degraded
    for d in trials:
        site = d.sites[0]
        for dev in d.devices:
            for i in range(360):
                ts = now - timedelta(minutes=360 - i)
                state = "degraded" if rng.random() < 0.025 else "ok"
                status.append((site.site_id, dev.device_id, ts, state, 80.0, "MB5G-2.4.1"))
                if dev.kind == "sensor":
                    sensor.append((site.site_id, dev.device_id, "cabin_temp", ts, "Cel",
                                   22 + math.sin(i / 30)))  # fmt: skip
                    continue
                angle = i / 360 * 2 * math.pi
                radio.append((
                    site.site_id, dev.device_id, ts,
                    rng.uniform(-105, -70), rng.uniform(-16, -6), rng.uniform(-2, 30),
                    rng.lognormvariate(5.2, 0.4), rng.lognormvariate(3.6, 0.4),
                    rng.lognormvariate(3.0, 0.35), rng.uniform(0.5, 6), rng.uniform(0, 1),
                    f"cell-{(i // 45) % 2}", 100 + (i // 45) % 2, "n79",
                    site.lat + 0.002 * math.sin(angle), site.lon + 0.002 * math.cos(angle),
                ))  # fmt: skip
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fiveg_radio (site_id, device_id, ts, rsrp_dbm, rsrq_db, sinr_db,"
            " dl_mbps, ul_mbps, rtt_ms, jitter_ms, loss_pct, cell_id, pci, band, lat, lon)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            radio,
        )
        cur.executemany(
            "INSERT INTO fiveg_sensor (site_id, device_id, name, ts, unit, value)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            sensor,
        )
        cur.executemany(
            "INSERT INTO fiveg_device_status (site_id, device_id, ts, status, battery_pct,"
            " firmware) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            status,
        )

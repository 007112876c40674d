"""A sample set whose KPIs are known by construction (see the comments for the numbers).

Trial hour 2026-11-20 00:00-01:00 UTC, 5-minute buckets (12). Two buses send one sample
every 10 s in 10 of the buckets; buckets 6 and 7 (00:30-00:40) have no samples: one gap.

- ul_mbps = (j % 100) + 1 over 600 samples: each of 1..100 six times, so the exact
  percentile_cont p5 is 5.95, p50 50.5, p95 95.05.
- dl_mbps = 200 for bus-01 and 50 for bus-02: mean 125, p5 50, p95 200.
- rtt_ms = 80 in buckets 10 and 11, else 10: p95 = 80, reliability (<= 50 ms) = 80 %,
  availability of "RTT p95 <= 50 ms" = 8 of 12 buckets (gaps fail) = 66.67 %.
- rsrp_dbm cycles -75, -85, -95, -105: 150 samples in each band.
- bus-01 switches cell every bucket (9 handovers), bus-02 stays: 9 over 20 device-buckets
  of 5 minutes = 1.667 device-hours -> 5.4 per device-hour.
- bus-01 stays at Maebashi station, bus-02 sits about 300 m north (295 samples) and 5
  samples 1 km away (a cell below the minimum sample count).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
BUCKET = timedelta(minutes=5)
DEVICES = ("bus-01", "bus-02")
SITE = "maebashi-station"
GAP_BUCKETS = (6, 7)
STATION = (36.38373, 139.072877)
NORTH = (36.38643, 139.072877)
FAR = (36.39273, 139.072877)


def samples(site: str = SITE) -> list[dict[str, Any]]:
    """Rows (fiveg_radio columns, plus site_id) in a fixed order."""
    rows: list[dict[str, Any]] = []
    j = 0
    for b in range(12):
        if b in GAP_BUCKETS:
            continue
        for k in range(30):
            for d, dev in enumerate(DEVICES):
                ts = START + b * BUCKET + timedelta(seconds=10 * k + d)
                if dev == "bus-01":
                    lat, lon = STATION
                else:
                    lat, lon = FAR if (b == 0 and k < 5) else NORTH
                rows.append(
                    {
                        "site_id": site,
                        "device_id": dev,
                        "ts": ts,
                        "ul_mbps": float(j % 100 + 1),
                        "dl_mbps": 200.0 if dev == "bus-01" else 50.0,
                        "rtt_ms": 80.0 if b >= 10 else 10.0,
                        "jitter_ms": 2.0,
                        "loss_pct": 0.5 if dev == "bus-01" else 0.0,
                        "rsrp_dbm": (-75.0, -85.0, -95.0, -105.0)[j % 4],
                        "rsrq_db": -9.0,
                        "sinr_db": 25.0,
                        "cell_id": f"c{b % 2}" if dev == "bus-01" else "c0",
                        "pci": 1,
                        "band": "n79",
                        "lat": lat,
                        "lon": lon,
                    }
                )
                j += 1
    return rows


SENSOR = "env-01"
SENSOR_MINUTES = (0, 1, 2, 3, 4, 50, 51, 52, 53, 54)


def senml_packs() -> list[tuple[str, list[dict[str, Any]]]]:
    """One SenML pack per minute (RFC 8428, absolute times): temperature 20.0 + minute/10.

    Ten records; 5-minute buckets 00:00 and 00:50 have data, so the gaps are 00:05-00:50
    and 00:55-01:00; the latest value is 25.4 at 00:54.
    """
    return [
        (
            SENSOR,
            [
                {
                    "bn": f"{SENSOR}:",
                    "n": "temperature",
                    "u": "Cel",
                    "v": 20.0 + m / 10,
                    "t": (START + timedelta(minutes=m)).timestamp(),
                }
            ],
        )
        for m in SENSOR_MINUTES
    ]


def trial_definition(trial_id: str = "known-bus-trial") -> dict[str, Any]:
    """A transport trial over the known hour with the theme's default targets."""
    return {
        "trial_id": trial_id,
        "title": "既知データ試験 (前橋駅)",
        "theme": "transport",
        "period_start": START.isoformat(),
        "period_end": END.isoformat(),
        "radio": {"band": "n79", "bandwidth_mhz": 100, "mode": "SA"},
        "sites": [{"site_id": SITE, "name": "JR前橋駅", "lat": STATION[0], "lon": STATION[1]}],
        "gnbs": [
            {
                "gnb_id": "gnb-1",
                "site_id": SITE,
                "lat": STATION[0],
                "lon": STATION[1],
                "band": "n79",
                "bandwidth_mhz": 100,
                "mode": "SA",
            }
        ],
        "devices": [
            {"device_id": "bus-01", "kind": "bus_modem"},
            {"device_id": "bus-02", "kind": "bus_modem"},
            {"device_id": SENSOR, "kind": "sensor"},
        ],
    }


def insert_direct(db_url: str, rows: list[dict[str, Any]]) -> None:
    """Load rows with SQL (for tests of the HTTP and report layers, not of ingest)."""
    import psycopg

    cols = ["site_id", "device_id", "ts", "ul_mbps", "dl_mbps", "rtt_ms", "jitter_ms",
            "loss_pct", "rsrp_dbm", "rsrq_db", "sinr_db", "cell_id", "pci", "band", "lat",
            "lon"]  # fmt: skip
    copy_sql = f"COPY fiveg_radio ({', '.join(cols)}) FROM STDIN"
    with psycopg.connect(db_url) as conn, conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for r in rows:
            copy.write_row([r[c] for c in cols])

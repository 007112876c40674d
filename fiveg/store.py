"""SQL adapter: the trial registry tables and KPI queries over fiveg_radio / fiveg_sensor.

Async (psycopg AsyncConnection) so the API uses it directly; the CLI and benchmarks run it
with ``asyncio.run``. The raw path computes percentiles in SQL with ``percentile_cont``
(the same definition as :func:`fiveg.kpi.percentile_cont`); the rollup path reads the 5-minute
histogram rollups and estimates percentiles with :mod:`fiveg.histogram`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from fiveg import histogram
from fiveg.kpi import BAND_NAMES, BANDS, Gap, Stats, bucket_start, find_gaps
from fiveg.targets import Target
from fiveg.trial import Device, Gnb, Site, TrialDefinition

# Sums and band counts per 5 minutes (also the resolution of data coverage and gaps);
# histograms per hour (percentiles and availability on the rollup path).
ROLLUP_WIDTH = timedelta(minutes=5)
HIST_WIDTH = timedelta(hours=1)


@dataclass(frozen=True)
class StoredTrial:
    definition: TrialDefinition
    targets: list[Target]

    @property
    def devices(self) -> list[str]:
        return [d.device_id for d in self.definition.devices]


# ---------------------------------------------------------------------------- registry


async def save_trial(conn: AsyncConnection, d: TrialDefinition) -> None:
    """Insert or replace a trial with its devices and effective targets."""
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO fiveg_trials (trial_id, title, theme, period_start, period_end,
                description, latency_bound_ms, radio, sites, gnbs)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (trial_id) DO UPDATE SET
                title = EXCLUDED.title, theme = EXCLUDED.theme,
                period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
                description = EXCLUDED.description, latency_bound_ms = EXCLUDED.latency_bound_ms,
                radio = EXCLUDED.radio, sites = EXCLUDED.sites, gnbs = EXCLUDED.gnbs,
                updated_at = now()
            """,
            [
                d.trial_id,
                d.title,
                d.theme,
                d.period_start,
                d.period_end,
                d.description,
                d.bound_ms,
                Jsonb(d.radio),
                Jsonb([s.model_dump() for s in d.sites]),
                Jsonb([g.model_dump() for g in d.gnbs]),
            ],
        )
        await conn.execute("DELETE FROM fiveg_trial_devices WHERE trial_id = %s", [d.trial_id])
        await conn.execute("DELETE FROM fiveg_trial_targets WHERE trial_id = %s", [d.trial_id])
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO fiveg_trial_devices VALUES (%s, %s, %s, %s)",
                [(d.trial_id, x.device_id, x.kind, x.label) for x in d.devices],
            )
            await cur.executemany(
                "INSERT INTO fiveg_trial_targets VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        d.trial_id,
                        t.kpi,
                        t.op,
                        t.value,
                        t.info.unit,
                        t.info.label,
                        t.source,
                        t.reference,
                    )
                    for t in d.effective_targets()
                ],
            )


async def delete_trial(conn: AsyncConnection, trial_id: str) -> bool:
    cur = await conn.execute("DELETE FROM fiveg_trials WHERE trial_id = %s", [trial_id])
    return cur.rowcount > 0


_TRIAL_COLS = (
    "trial_id, title, theme, period_start, period_end, description, latency_bound_ms, "
    "radio, sites, gnbs"
)


async def _load(conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> list[StoredTrial]:
    ids = [r[0] for r in rows]
    devs: dict[str, list[Device]] = {i: [] for i in ids}
    tgts: dict[str, list[Target]] = {i: [] for i in ids}
    cur = await conn.execute(
        "SELECT trial_id, device_id, kind, label FROM fiveg_trial_devices"
        " WHERE trial_id = ANY(%s) ORDER BY trial_id, device_id",
        [ids],
    )
    for tid, dev, kind, label in await cur.fetchall():
        devs[tid].append(Device(device_id=dev, kind=kind, label=label))
    cur = await conn.execute(
        "SELECT trial_id, kpi, op, value, source, reference FROM fiveg_trial_targets"
        " WHERE trial_id = ANY(%s) ORDER BY trial_id, reference, kpi",
        [ids],
    )
    for tid, kpi, op, value, source, ref in await cur.fetchall():
        tgts[tid].append(Target(kpi, op, value, source, ref))
    out = []
    for r in rows:
        d = TrialDefinition.model_construct(
            trial_id=r[0],
            title=r[1],
            theme=r[2],
            period_start=r[3],
            period_end=r[4],
            description=r[5],
            latency_bound_ms=r[6],
            radio=r[7],
            sites=[Site.model_validate(s) for s in r[8]],
            gnbs=[Gnb.model_validate(g) for g in r[9]],
            devices=devs[r[0]],
            targets=[],
        )
        out.append(StoredTrial(d, tgts[r[0]]))
    return out


async def get_trial(conn: AsyncConnection, trial_id: str) -> StoredTrial | None:
    cur = await conn.execute(
        f"SELECT {_TRIAL_COLS} FROM fiveg_trials WHERE trial_id = %s", [trial_id]
    )
    rows = await cur.fetchall()
    found = await _load(conn, rows)
    return found[0] if found else None


async def list_trials(conn: AsyncConnection, theme: str | None = None) -> list[StoredTrial]:
    cur = await conn.execute(
        f"SELECT {_TRIAL_COLS} FROM fiveg_trials"
        " WHERE %(theme)s::text IS NULL OR theme = %(theme)s ORDER BY period_start, trial_id",
        {"theme": theme},
    )
    return await _load(conn, await cur.fetchall())


# ---------------------------------------------------------------------------- raw path

_BAND_SQL = (
    ",\n".join(
        f"count(*) FILTER (WHERE {m} >= {lo} AND {m} < {hi})"
        for m, bands in BANDS.items()
        for (_, lo), hi in zip(bands, [float("inf"), *[b[1] for b in bands[:-1]]], strict=True)
    )
    .replace("-inf", "'-Infinity'")
    .replace(" inf", " 'Infinity'")
)

_RAW_STATS = f"""
SELECT {{key}} AS k, count(*),
  avg(dl_mbps), percentile_cont(ARRAY[0.05, 0.5, 0.95]) WITHIN GROUP (ORDER BY dl_mbps),
  avg(ul_mbps), percentile_cont(ARRAY[0.05, 0.5, 0.95]) WITHIN GROUP (ORDER BY ul_mbps),
  avg(rtt_ms), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY rtt_ms),
  avg(jitter_ms), avg(loss_pct),
  count(rtt_ms), count(*) FILTER (WHERE rtt_ms <= %(bound)s),
  {_BAND_SQL}
FROM fiveg_radio
WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s
GROUP BY 1
"""


def _stats_from_row(r: tuple[Any, ...]) -> Stats:
    dl = r[3] or [None] * 3
    ul = r[5] or [None] * 3
    rtt = r[7] or [None] * 3
    n_rtt, within = r[10], r[11]
    values: dict[str, float | None] = {
        "dl_mbps_mean": r[2],
        "dl_mbps_p5": dl[0],
        "dl_mbps_p50": dl[1],
        "dl_mbps_p95": dl[2],
        "ul_mbps_mean": r[4],
        "ul_mbps_p5": ul[0],
        "ul_mbps_p50": ul[1],
        "ul_mbps_p95": ul[2],
        "rtt_ms_mean": r[6],
        "rtt_ms_p50": rtt[0],
        "rtt_ms_p95": rtt[1],
        "rtt_ms_p99": rtt[2],
        "jitter_ms_mean": r[8],
        "loss_pct_mean": r[9],
        "reliability_pct": 100.0 * within / n_rtt if n_rtt else None,
    }
    counts = list(r[12:])
    bands = {
        m: dict(zip(BAND_NAMES, counts[i * 4 : i * 4 + 4], strict=True))
        for i, m in enumerate(BANDS)
    }
    return Stats(n=r[1], values=values, bands=bands)


def _params(devices: list[str], start: datetime, end: datetime, bound: float) -> dict[str, Any]:
    return {"devices": devices, "start": start, "end": end, "bound": bound}


async def raw_stats(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, bound: float
) -> Stats:
    """Exact KPIs over every sample of these devices in [start, end)."""
    cur = await conn.execute(
        _RAW_STATS.format(key="NULL::text"), _params(devices, start, end, bound)
    )
    row = await cur.fetchone()
    return _stats_from_row(row) if row else Stats(n=0)


async def raw_stats_by_bucket(
    conn: AsyncConnection,
    devices: list[str],
    start: datetime,
    end: datetime,
    bound: float,
    width: timedelta,
) -> dict[datetime, Stats]:
    p = _params(devices, start, end, bound) | {"width": width}
    cur = await conn.execute(_RAW_STATS.format(key="time_bucket(%(width)s, ts)"), p)
    return {r[0]: _stats_from_row(r) for r in await cur.fetchall()}


async def raw_stats_by_device(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, bound: float
) -> dict[str, Stats]:
    cur = await conn.execute(
        _RAW_STATS.format(key="device_id"), _params(devices, start, end, bound)
    )
    return {r[0]: _stats_from_row(r) for r in await cur.fetchall()}


@dataclass(frozen=True)
class Mobility:
    handovers: int
    device_hours: float

    @property
    def per_device_hour(self) -> float | None:
        return self.handovers / self.device_hours if self.device_hours else None


async def raw_mobility(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, width: timedelta
) -> Mobility:
    """Cell changes between consecutive samples of a device, and observed device-hours."""
    cur = await conn.execute(
        """
        WITH s AS (
            SELECT device_id, ts, cell_id,
                   lag(cell_id) OVER (PARTITION BY device_id ORDER BY ts) AS prev
            FROM fiveg_radio
            WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s
                  AND cell_id IS NOT NULL
        )
        SELECT (SELECT count(*) FROM s WHERE prev IS NOT NULL AND prev <> cell_id),
               (SELECT count(DISTINCT (device_id, time_bucket(%(width)s, ts)))
                FROM fiveg_radio
                WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s)
        """,
        {"devices": devices, "start": start, "end": end, "width": width},
    )
    row = await cur.fetchone()
    assert row is not None
    return Mobility(int(row[0]), row[1] * width.total_seconds() / 3600.0)


# ---------------------------------------------------------------------------- rollup path


def _stats_from_rollup(
    n: int, sums: tuple[Any, ...], hists: dict[str, dict[int, int]], bound: float
) -> Stats:
    (n_dl, s_dl, n_ul, s_ul, n_rtt, s_rtt, n_j, s_j, n_l, s_l, *counts) = sums

    def avg(s: Any, c: int) -> float | None:
        return float(s) / float(c) if c else None

    values: dict[str, float | None] = {
        "dl_mbps_mean": avg(s_dl, n_dl),
        "ul_mbps_mean": avg(s_ul, n_ul),
        "rtt_ms_mean": avg(s_rtt, n_rtt),
        "jitter_ms_mean": avg(s_j, n_j),
        "loss_pct_mean": avg(s_l, n_l),
        "reliability_pct": histogram.share_at_most(hists["rtt"], bound),
    }
    for m, ps in (("dl_mbps", (5, 50, 95)), ("ul_mbps", (5, 50, 95)), ("rtt_ms", (50, 95, 99))):
        est = histogram.percentiles(hists[m.split("_")[0]], [p / 100 for p in ps])
        for p, v in zip(ps, est, strict=True):
            values[f"{m}_p{p}"] = v
    bands = {
        m: dict(zip(BAND_NAMES, [int(c) for c in counts[i * 4 : i * 4 + 4]], strict=True))
        for i, m in enumerate(BANDS)
    }
    return Stats(n=n, values=values, bands=bands)


_SUM_COLS = (
    "n_dl", "sum_dl", "n_ul", "sum_ul", "n_rtt", "sum_rtt", "n_jitter", "sum_jitter",
    "n_loss", "sum_loss", "rsrp_excellent", "rsrp_good", "rsrp_fair", "rsrp_poor",
    "rsrq_excellent", "rsrq_good", "rsrq_fair", "rsrq_poor", "sinr_excellent", "sinr_good",
    "sinr_fair", "sinr_poor",
)  # fmt: skip
_ROLLUP_SUMS = (
    "SELECT bucket, sum(n)::bigint, "
    + ", ".join(f"sum({c})::float8" for c in _SUM_COLS)
    + " FROM {table} WHERE device_id = ANY(%(devices)s) AND bucket >= %(start)s"
    " AND bucket < %(end)s {before} GROUP BY bucket"
)
# The same sums straight from the samples, for the plain-PostgreSQL tail past the watermark.
_TAIL_SUMS = f"""
SELECT time_bucket(%(width)s, ts), count(*),
       count(dl_mbps)::float8, sum(dl_mbps)::float8, count(ul_mbps)::float8,
       sum(ul_mbps)::float8, count(rtt_ms)::float8, sum(rtt_ms)::float8,
       count(jitter_ms)::float8, sum(jitter_ms)::float8, count(loss_pct)::float8,
       sum(loss_pct)::float8,
       {_BAND_SQL.replace("count(*) FILTER", "(count(*) FILTER").replace("),", "))::float8,")}
       )::float8
FROM fiveg_radio
WHERE device_id = ANY(%(devices)s) AND ts >= %(tail)s AND ts < %(end)s
GROUP BY 1
"""
_ROLLUP_HIST = (
    "SELECT bucket, width_bucket, sum(n)::bigint FROM {table}"
    " WHERE device_id = ANY(%(devices)s) AND bucket >= %(start)s AND bucket < %(end)s"
    " AND width_bucket IS NOT NULL {before} GROUP BY 1, 2"
)
_TAIL_HIST = """
SELECT time_bucket(%(width)s, ts) AS b,
       width_bucket(log(greatest({metric}, 0.001)::double precision), -2, 5, 280) AS k,
       count(*)
FROM fiveg_radio
WHERE device_id = ANY(%(devices)s) AND ts >= %(tail)s AND ts < %(end)s
      AND {metric} IS NOT NULL
GROUP BY 1, 2
"""
_METRIC_COLUMN = {"dl": "dl_mbps", "ul": "ul_mbps", "rtt": "rtt_ms"}


async def _rollup_rows(
    conn: AsyncConnection, name: str, rollup_sql: str, tail_sql: str, p: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows of a rollup in [start, end).

    TimescaleDB: the continuous aggregate (real-time aggregation adds the newest buckets).
    Plain PostgreSQL: the materialized view below the watermark plus the samples past it,
    queried with a sargable time range (the generic view's live half cannot use one).
    """
    cur = await conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, nullif(watermark, '-infinity')"
        " FROM mebuku.rollups WHERE name = %s",
        [f"{name}_mat", name],
    )
    row = await cur.fetchone()
    if row is None or not row[0]:
        cur = await conn.execute(rollup_sql.format(table=name, before=""), p)
        return list(await cur.fetchall())
    watermark: datetime | None = row[1]  # None: nothing materialized yet
    rows: list[tuple[Any, ...]] = []
    if watermark is not None:
        cur = await conn.execute(
            rollup_sql.format(table=f"{name}_mat", before="AND bucket < %(watermark)s"),
            p | {"watermark": watermark},
        )
        rows = list(await cur.fetchall())
    if watermark is None or p["end"] > watermark:
        tail = p["start"] if watermark is None else max(watermark, p["start"])
        cur = await conn.execute(tail_sql, p | {"tail": tail})
        rows.extend(await cur.fetchall())
    return rows


_ROLLUP_COUNT = (
    "SELECT coalesce(sum(n), 0)::bigint FROM {table} WHERE device_id = ANY(%(devices)s)"
    " AND bucket >= %(start)s AND bucket < %(end)s {before}"
)
_TAIL_COUNT = (
    "SELECT count(*) FROM fiveg_radio"
    " WHERE device_id = ANY(%(devices)s) AND ts >= %(tail)s AND ts < %(end)s"
)


async def sample_count(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime
) -> int:
    """Samples of these devices in the 5-minute buckets covering [start, end) (fast)."""
    p = {"devices": devices, "start": bucket_start(start, ROLLUP_WIDTH), "end": end}
    p["width"] = ROLLUP_WIDTH
    rows = await _rollup_rows(conn, "fiveg_radio_5m", _ROLLUP_COUNT, _TAIL_COUNT, p)
    return sum(int(r[0]) for r in rows)


def hour_span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) widened to whole hours: the period the rollup path answers for."""
    s = bucket_start(start, HIST_WIDTH)
    e = bucket_start(end, HIST_WIDTH)
    return s, (e if e == end else e + HIST_WIDTH)


@dataclass(frozen=True)
class RollupResult:
    overall: Stats
    per_hour: dict[datetime, Stats]
    data_buckets: set[datetime]  # 5-minute buckets with samples


async def rollup_stats(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, bound: float
) -> RollupResult:
    """KPIs from the rollups over [start, end) widened to whole hours (:func:`hour_span`).

    Means and band shares are exact; percentiles carry the histogram's error bound
    (:data:`fiveg.histogram.RELATIVE_ERROR`).
    """
    s, e = hour_span(start, end)
    p: dict[str, Any] = {"devices": devices, "start": s, "end": e, "width": HIST_WIDTH}
    hists: dict[str, dict[datetime, dict[int, int]]] = {}
    for metric, column in _METRIC_COLUMN.items():
        name = f"fiveg_{metric}_hist_1h"
        rows = await _rollup_rows(conn, name, _ROLLUP_HIST, _TAIL_HIST.format(metric=column), p)
        per: dict[datetime, dict[int, int]] = {}
        for b, k, c in rows:
            h = per.get(b)
            if h is None:
                h = per[b] = {}
            h[k] = h.get(k, 0) + int(c)
        hists[metric] = per
    p["width"] = ROLLUP_WIDTH
    rows = await _rollup_rows(conn, "fiveg_radio_5m", _ROLLUP_SUMS, _TAIL_SUMS, p)
    hour_sums: dict[datetime, list[float]] = {}
    hour_n: dict[datetime, int] = {}
    data_buckets: set[datetime] = set()
    for row in rows:
        b, n = row[0], int(row[1])
        if n:
            data_buckets.add(b)
        hour = bucket_start(b, HIST_WIDTH)
        acc = hour_sums.setdefault(hour, [0.0] * len(_SUM_COLS))
        hour_sums[hour] = [a + float(x or 0) for a, x in zip(acc, row[2:], strict=True)]
        hour_n[hour] = hour_n.get(hour, 0) + n
    per_hour = {
        hour: _stats_from_rollup(
            hour_n[hour], tuple(sums), {m: hists[m].get(hour, {}) for m in hists}, bound
        )
        for hour, sums in hour_sums.items()
    }
    total = [sum(col) for col in zip(*hour_sums.values(), strict=True)] or [0.0] * len(_SUM_COLS)
    overall_h: dict[str, dict[int, int]] = {}
    for m, per in hists.items():
        merged: dict[int, int] = {}
        for h in per.values():
            histogram.merge(merged, h)
        overall_h[m] = merged
    overall = _stats_from_rollup(sum(hour_n.values()), tuple(total), overall_h, bound)
    return RollupResult(overall, per_hour, data_buckets)


async def raw_data_buckets(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime
) -> set[datetime]:
    """5-minute buckets in [start, end) with at least one sample (for coverage and gaps)."""
    cur = await conn.execute(
        "SELECT DISTINCT time_bucket(%s, ts) FROM fiveg_radio"
        " WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s",
        [ROLLUP_WIDTH, devices, start, end],
    )
    return {r[0] for r in await cur.fetchall()}


# ---------------------------------------------------------------------------- coverage


async def coverage_points(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime
) -> list[tuple[float, float, float | None, float | None, float | None]]:
    cur = await conn.execute(
        """
        SELECT lat, lon, rsrp_dbm, dl_mbps, ul_mbps FROM fiveg_radio
        WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s
              AND lat IS NOT NULL AND lon IS NOT NULL
        """,
        [devices, start, end],
    )
    return list(await cur.fetchall())


# ---------------------------------------------------------------------------- sensors


@dataclass(frozen=True)
class SensorSummary:
    device_id: str
    name: str
    unit: str | None
    count: int
    first_ts: datetime
    latest_ts: datetime
    latest_value: float | str | bool | None
    gaps: list[Gap]


async def sensor_summaries(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, width: timedelta
) -> list[SensorSummary]:
    """Per SenML sensor (device, name): counts, latest value and gaps in [start, end)."""
    p = {"devices": devices, "start": start, "end": end, "width": width}
    cur = await conn.execute(
        """
        SELECT DISTINCT ON (device_id, name) device_id, name, unit, ts,
               coalesce(to_jsonb(value), to_jsonb(value_string), to_jsonb(value_bool),
                        to_jsonb(value_data), to_jsonb(sum)),
               count(*) OVER w, min(ts) OVER w
        FROM fiveg_sensor
        WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s
        WINDOW w AS (PARTITION BY device_id, name)
        ORDER BY device_id, name, ts DESC
        """,
        p,
    )
    latest = await cur.fetchall()
    cur = await conn.execute(
        """
        SELECT DISTINCT device_id, name, time_bucket(%(width)s, ts)
        FROM fiveg_sensor
        WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s
        """,
        p,
    )
    buckets: dict[tuple[str, str], list[datetime]] = {}
    for dev, name, b in await cur.fetchall():
        buckets.setdefault((dev, name), []).append(b)
    return [
        SensorSummary(
            dev,
            name,
            unit,
            int(count),
            first,
            ts,
            value,
            find_gaps(buckets.get((dev, name), []), start, end, width),
        )
        for dev, name, unit, ts, value, count, first in latest
    ]

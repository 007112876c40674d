"""SQL adapter: the trial registry tables and KPI queries over fiveg_radio / fiveg_sensor.

The KPI columns are composed from the KPI catalogue (:data:`fiveg.targets.KPIS`) with
``psycopg.sql`` and read by name (``dict_row``), so a KPI added to the catalogue is
computed on both paths without touching the queries, and no column can shift another.

Async (psycopg AsyncConnection) so the API uses it directly; the CLI and benchmarks run it
with ``asyncio.run``. The raw path computes percentiles in SQL with ``percentile_cont``
(the same definition as :func:`fiveg.kpi.percentile_cont`); the rollup path reads the 5-minute
histogram rollups and estimates percentiles with :mod:`fiveg.histogram`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from fiveg import histogram
from fiveg.kpi import BAND_NAMES, BANDS, Gap, Stats, bucket_start, find_gaps
from fiveg.targets import KPIS, Target, percentiles_of
from fiveg.trial import Device, Gnb, Site, TrialDefinition

# Sums and band counts per 5 minutes (also the resolution of data coverage and gaps);
# histograms per hour (percentiles and availability on the rollup path).
ROLLUP_WIDTH = timedelta(minutes=5)
HIST_WIDTH = timedelta(hours=1)


@dataclass(frozen=True)
class StoredTrial:
    """A trial definition as stored, with its targets resolved."""

    definition: TrialDefinition
    targets: list[Target]

    @property
    def devices(self) -> list[str]:
        """The trial's device ids, which select its samples."""
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
    """Delete a trial definition; False when there was none. Measurements stay."""
    cur = await conn.execute("DELETE FROM fiveg_trials WHERE trial_id = %s", [trial_id])
    return cur.rowcount > 0


_TRIAL_COLUMNS = (
    "trial_id",
    "title",
    "theme",
    "period_start",
    "period_end",
    "description",
    "latency_bound_ms",
    "radio",
    "sites",
    "gnbs",
)
_TRIAL_COLS = sql.SQL(", ").join(map(sql.Identifier, _TRIAL_COLUMNS))


async def _load(conn: AsyncConnection, rows: list[DictRow]) -> list[StoredTrial]:
    ids = [r["trial_id"] for r in rows]
    devs: dict[str, list[Device]] = {i: [] for i in ids}
    tgts: dict[str, list[Target]] = {i: [] for i in ids}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT trial_id, device_id, kind, label FROM fiveg_trial_devices"
            " WHERE trial_id = ANY(%s) ORDER BY trial_id, device_id",
            [ids],
        )
        for dev in await cur.fetchall():
            devs[dev["trial_id"]].append(
                Device(device_id=dev["device_id"], kind=dev["kind"], label=dev["label"])
            )
        await cur.execute(
            "SELECT trial_id, kpi, op, value, source, reference FROM fiveg_trial_targets"
            " WHERE trial_id = ANY(%s) ORDER BY trial_id, reference, kpi",
            [ids],
        )
        for t in await cur.fetchall():
            tgts[t["trial_id"]].append(
                Target(t["kpi"], t["op"], t["value"], t["source"], t["reference"])
            )
    out = []
    for r in rows:
        d = TrialDefinition.model_construct(
            trial_id=r["trial_id"],
            title=r["title"],
            theme=r["theme"],
            period_start=r["period_start"],
            period_end=r["period_end"],
            description=r["description"],
            latency_bound_ms=r["latency_bound_ms"],
            radio=r["radio"],
            sites=[Site.model_validate(x) for x in r["sites"]],
            gnbs=[Gnb.model_validate(g) for g in r["gnbs"]],
            devices=devs[r["trial_id"]],
            targets=[],
        )
        out.append(StoredTrial(d, tgts[r["trial_id"]]))
    return out


async def get_trial(conn: AsyncConnection, trial_id: str) -> StoredTrial | None:
    """One stored trial, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL("SELECT {} FROM fiveg_trials WHERE trial_id = %s").format(_TRIAL_COLS),
            [trial_id],
        )
        rows = await cur.fetchall()
    found = await _load(conn, rows)
    return found[0] if found else None


async def list_trials(conn: AsyncConnection, theme: str | None = None) -> list[StoredTrial]:
    """The stored trials, optionally of one theme."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL(
                "SELECT {} FROM fiveg_trials"
                " WHERE %(theme)s::text IS NULL OR theme = %(theme)s"
                " ORDER BY period_start, trial_id"
            ).format(_TRIAL_COLS),
            {"theme": theme},
        )
        rows = await cur.fetchall()
    return await _load(conn, rows)


# ---------------------------------------------------------------------------- raw path


def _band_alias(metric: str, band: str) -> str:
    """rsrp_dbm + good -> rsrp_good (the column names of the fiveg_radio_5m rollup)."""
    return f"{metric.split('_')[0]}_{band}"


def _band_counts(cast: sql.Composable = sql.SQL("")) -> list[sql.Composable]:
    """``count(*) FILTER (...) AS rsrp_excellent, ...`` for every band of every metric."""
    out: list[sql.Composable] = []
    for m, bands in BANDS.items():
        uppers = [float("inf"), *[lo for _, lo in bands[:-1]]]
        for (band, lo), hi in zip(bands, uppers, strict=True):
            out.append(
                sql.SQL("(count(*) FILTER (WHERE {m} >= {lo} AND {m} < {hi})){cast} AS {a}").format(
                    m=sql.Identifier(m),
                    lo=sql.Literal(lo),
                    hi=sql.Literal(hi),
                    cast=cast,
                    a=sql.Identifier(_band_alias(m, band)),
                )
            )
    return out


def _kpi_columns() -> list[sql.Composable]:
    """One output column per mean KPI, one array per percentile column, the reliability
    counts: all from the KPI catalogue, named so rows are read by name."""
    out: list[sql.Composable] = []
    done: set[str] = set()
    for name, k in KPIS.items():
        col = sql.Identifier(k.column)
        if k.stat == "mean":
            out.append(sql.SQL("avg({}) AS {}").format(col, sql.Identifier(name)))
        elif k.stat == "percentile" and k.column not in done:
            done.add(k.column)
            qs = sql.SQL(", ").join(sql.Literal(q) for _, q in percentiles_of(k.column))
            out.append(
                sql.SQL("percentile_cont(ARRAY[{}]) WITHIN GROUP (ORDER BY {}) AS {}").format(
                    qs, col, sql.Identifier(f"{k.column}_pct")
                )
            )
        elif k.stat == "reliability":
            out.append(
                sql.SQL(
                    "count({c}) AS {n}, count(*) FILTER (WHERE {c} <= %(bound)s) AS {w}"
                ).format(c=col, n=sql.Identifier(f"{name}_n"), w=sql.Identifier(f"{name}_within"))
            )
    return out


_RAW_COLUMNS = sql.SQL(", ").join([*_kpi_columns(), *_band_counts()])


def _raw_stats_sql(key: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "SELECT {key} AS k, count(*) AS n, {columns}"
        " FROM fiveg_radio"
        " WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s"
        " GROUP BY 1"
    ).format(key=key, columns=_RAW_COLUMNS)


def _stats_from_row(r: DictRow) -> Stats:
    values: dict[str, float | None] = {}
    for name, k in KPIS.items():
        if k.stat == "mean":
            values[name] = r[name]
        elif k.stat == "percentile":
            found = r[f"{k.column}_pct"]
            i = [n for n, _ in percentiles_of(k.column)].index(name)
            values[name] = found[i] if found else None
        else:
            n, within = r[f"{name}_n"], r[f"{name}_within"]
            values[name] = 100.0 * within / n if n else None
    bands = {m: {b: r[_band_alias(m, b)] for b in BAND_NAMES} for m in BANDS}
    return Stats(n=r["n"], values=values, bands=bands)


async def _raw(conn: AsyncConnection, key: sql.Composable, p: dict[str, Any]) -> list[DictRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_raw_stats_sql(key), p)
        return await cur.fetchall()


def _params(devices: list[str], start: datetime, end: datetime, bound: float) -> dict[str, Any]:
    return {"devices": devices, "start": start, "end": end, "bound": bound}


async def raw_stats(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, bound: float
) -> Stats:
    """Exact KPIs over every sample of these devices in [start, end)."""
    rows = await _raw(conn, sql.SQL("NULL::text"), _params(devices, start, end, bound))
    return _stats_from_row(rows[0]) if rows else Stats(n=0)


async def raw_stats_by_bucket(
    conn: AsyncConnection,
    devices: list[str],
    start: datetime,
    end: datetime,
    bound: float,
    width: timedelta,
) -> dict[datetime, Stats]:
    """Statistics per time bucket from raw samples, computed in SQL."""
    p = _params(devices, start, end, bound) | {"width": width}
    rows = await _raw(conn, sql.SQL("time_bucket(%(width)s, ts)"), p)
    return {r["k"]: _stats_from_row(r) for r in rows}


async def raw_stats_by_device(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, bound: float
) -> dict[str, Stats]:
    """Statistics per device from raw samples, computed in SQL."""
    rows = await _raw(conn, sql.Identifier("device_id"), _params(devices, start, end, bound))
    return {r["k"]: _stats_from_row(r) for r in rows}


@dataclass(frozen=True)
class Mobility:
    """Handovers and device hours, for the mobility KPI (handovers per device hour)."""

    handovers: int
    device_hours: float

    @property
    def per_device_hour(self) -> float | None:
        """Handovers per device hour, or None without device time."""
        return self.handovers / self.device_hours if self.device_hours else None


async def raw_mobility(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, width: timedelta
) -> Mobility:
    """Cell changes between consecutive samples of a device, and observed device-hours."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """
            WITH s AS (
                SELECT device_id, ts, cell_id,
                       lag(cell_id) OVER (PARTITION BY device_id ORDER BY ts) AS prev
                FROM fiveg_radio
                WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s
                      AND cell_id IS NOT NULL
            )
            SELECT (SELECT count(*) FROM s WHERE prev IS NOT NULL AND prev <> cell_id)
                       AS handovers,
                   (SELECT count(DISTINCT (device_id, time_bucket(%(width)s, ts)))
                    FROM fiveg_radio
                    WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s)
                       AS device_buckets
            """,
            {"devices": devices, "start": start, "end": end, "width": width},
        )
        row = await cur.fetchone()
    assert row is not None
    hours = row["device_buckets"] * width.total_seconds() / 3600.0
    return Mobility(int(row["handovers"]), hours)


# ---------------------------------------------------------------------------- rollup path

# The fiveg_radio_5m rollup's counts and sums (fiveg/migrations/0002_radio_rollups.sql):
# its short metric name -> the fiveg_radio column.
_ROLLUP_METRICS = {
    "dl": "dl_mbps",
    "ul": "ul_mbps",
    "rtt": "rtt_ms",
    "jitter": "jitter_ms",
    "loss": "loss_pct",
}
_SHORT = {column: short for short, column in _ROLLUP_METRICS.items()}
_SUM_COLS: tuple[str, ...] = (
    *(f"{kind}_{short}" for short in _ROLLUP_METRICS for kind in ("n", "sum")),
    *(_band_alias(m, b) for m in BANDS for b in BAND_NAMES),
)


def _stats_from_rollup(
    n: int, sums: dict[str, float], hists: dict[str, dict[int, int]], bound: float
) -> Stats:
    """Every catalogue KPI from the sums (means) and the histograms (percentiles)."""
    values: dict[str, float | None] = {}
    for name, k in KPIS.items():
        short = _SHORT[k.column]
        if k.stat == "mean":
            count = sums[f"n_{short}"]
            values[name] = float(sums[f"sum_{short}"]) / float(count) if count else None
        elif k.stat == "percentile":
            if name not in values:  # every percentile of the column at once (one sort)
                wanted = percentiles_of(k.column)
                found = histogram.percentiles(hists[short], [q for _, q in wanted])
                values.update(zip([n for n, _ in wanted], found, strict=True))
        else:
            values[name] = histogram.share_at_most(hists[short], bound)
    bands = {m: {b: int(sums[_band_alias(m, b)]) for b in BAND_NAMES} for m in BANDS}
    return Stats(n=n, values=values, bands=bands)


RollupSql = Callable[[sql.Composable, sql.Composable], sql.Composed]  # (table, before)

_SUMS = sql.SQL(", ").join(
    sql.SQL("sum({c})::float8 AS {c}").format(c=sql.Identifier(c)) for c in _SUM_COLS
)


def _rollup_sums(table: sql.Composable, before: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "SELECT bucket, sum(n)::bigint AS n, {sums} FROM {table}"
        " WHERE device_id = ANY(%(devices)s) AND bucket >= %(start)s AND bucket < %(end)s"
        " {before} GROUP BY bucket"
    ).format(sums=_SUMS, table=table, before=before)


# The same sums straight from the samples, for the plain-PostgreSQL tail past the watermark.
_TAIL_SUMS = sql.SQL(
    "SELECT time_bucket(%(width)s, ts) AS bucket, count(*) AS n, {sums}"
    " FROM fiveg_radio"
    " WHERE device_id = ANY(%(devices)s) AND ts >= %(tail)s AND ts < %(end)s"
    " GROUP BY 1"
).format(
    sums=sql.SQL(", ").join(
        [
            *(
                sql.SQL("{f}({c})::float8 AS {a}").format(
                    f=sql.SQL(fn), c=sql.Identifier(column), a=sql.Identifier(f"{kind}_{short}")
                )
                for short, column in _ROLLUP_METRICS.items()
                for kind, fn in (("n", "count"), ("sum", "sum"))
            ),
            *_band_counts(sql.SQL("::float8")),
        ]
    )
)


def _rollup_hist(table: sql.Composable, before: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "SELECT bucket, width_bucket AS k, sum(n)::bigint AS n FROM {table}"
        " WHERE device_id = ANY(%(devices)s) AND bucket >= %(start)s AND bucket < %(end)s"
        " AND width_bucket IS NOT NULL {before} GROUP BY 1, 2"
    ).format(table=table, before=before)


def _tail_hist(column: str) -> sql.Composed:
    return sql.SQL(
        "SELECT time_bucket(%(width)s, ts) AS bucket,"
        " width_bucket(log(greatest({m}, 0.001)::double precision), -2, 5, 280) AS k,"
        " count(*) AS n"
        " FROM fiveg_radio"
        " WHERE device_id = ANY(%(devices)s) AND ts >= %(tail)s AND ts < %(end)s"
        " AND {m} IS NOT NULL"
        " GROUP BY 1, 2"
    ).format(m=sql.Identifier(column))


_METRIC_COLUMN = {"dl": "dl_mbps", "ul": "ul_mbps", "rtt": "rtt_ms"}  # the histogram rollups


async def _rollup_rows(
    conn: AsyncConnection, name: str, rollup_sql: RollupSql, tail_sql: sql.SQL | sql.Composed,
    p: dict[str, Any],
) -> list[DictRow]:  # fmt: skip
    """Rows of a rollup in [start, end), by column name.

    TimescaleDB: the continuous aggregate (real-time aggregation adds the newest buckets).
    Plain PostgreSQL: the materialized view below the watermark plus the samples past it,
    queried with a sargable time range (the generic view's live half cannot use one).
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT to_regclass(%s) IS NOT NULL AS materialized,"
            " nullif(watermark, '-infinity') AS watermark"
            " FROM mebuku.rollups WHERE name = %s",
            [f"{name}_mat", name],
        )
        row = await cur.fetchone()
        if row is None or not row["materialized"]:
            await cur.execute(rollup_sql(sql.Identifier(name), sql.SQL("")), p)
            return await cur.fetchall()
        watermark: datetime | None = row["watermark"]  # None: nothing materialized yet
        rows: list[DictRow] = []
        if watermark is not None:
            await cur.execute(
                rollup_sql(sql.Identifier(f"{name}_mat"), sql.SQL("AND bucket < %(watermark)s")),
                p | {"watermark": watermark},
            )
            rows = await cur.fetchall()
        if watermark is None or p["end"] > watermark:
            tail = p["start"] if watermark is None else max(watermark, p["start"])
            await cur.execute(tail_sql, p | {"tail": tail})
            rows.extend(await cur.fetchall())
    return rows


def _rollup_count(table: sql.Composable, before: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "SELECT coalesce(sum(n), 0)::bigint AS n FROM {table} WHERE device_id = ANY(%(devices)s)"
        " AND bucket >= %(start)s AND bucket < %(end)s {before}"
    ).format(table=table, before=before)


_TAIL_COUNT = sql.SQL(
    "SELECT count(*) AS n FROM fiveg_radio"
    " WHERE device_id = ANY(%(devices)s) AND ts >= %(tail)s AND ts < %(end)s"
)


async def sample_count(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime
) -> int:
    """Samples of these devices in the 5-minute buckets covering [start, end) (fast)."""
    p = {"devices": devices, "start": bucket_start(start, ROLLUP_WIDTH), "end": end}
    p["width"] = ROLLUP_WIDTH
    rows = await _rollup_rows(conn, "fiveg_radio_5m", _rollup_count, _TAIL_COUNT, p)
    return sum(int(r["n"]) for r in rows)


def hour_span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) widened to whole hours: the period the rollup path answers for."""
    s = bucket_start(start, HIST_WIDTH)
    e = bucket_start(end, HIST_WIDTH)
    return s, (e if e == end else e + HIST_WIDTH)


@dataclass(frozen=True)
class RollupResult:
    """Statistics from the hourly rollups, with the 5-minute buckets that hold samples (coverage is
    decided on those, not on whole hours)."""

    overall: Stats
    per_hour: dict[datetime, Stats]
    data_buckets: set[datetime]  # 5-minute buckets with samples


async def _hourly_histograms(
    conn: AsyncConnection, p: dict[str, Any]
) -> dict[str, dict[datetime, dict[int, int]]]:
    hists: dict[str, dict[datetime, dict[int, int]]] = {}
    for metric, column in _METRIC_COLUMN.items():
        name = f"fiveg_{metric}_hist_1h"
        per: dict[datetime, dict[int, int]] = {}
        for r in await _rollup_rows(conn, name, _rollup_hist, _tail_hist(column), p):
            h = per.setdefault(r["bucket"], {})
            h[r["k"]] = h.get(r["k"], 0) + int(r["n"])
        hists[metric] = per
    return hists


async def rollup_stats(
    conn: AsyncConnection, devices: list[str], start: datetime, end: datetime, bound: float
) -> RollupResult:
    """KPIs from the rollups over [start, end) widened to whole hours (:func:`hour_span`).

    Means and band shares are exact; percentiles carry the histogram's error bound
    (:data:`fiveg.histogram.RELATIVE_ERROR`).
    """
    s, e = hour_span(start, end)
    p: dict[str, Any] = {"devices": devices, "start": s, "end": e, "width": HIST_WIDTH}
    hists = await _hourly_histograms(conn, p)
    p["width"] = ROLLUP_WIDTH
    rows = await _rollup_rows(conn, "fiveg_radio_5m", _rollup_sums, _TAIL_SUMS, p)
    hour_sums: dict[datetime, dict[str, float]] = {}
    hour_n: dict[datetime, int] = {}
    data_buckets: set[datetime] = set()
    for row in rows:
        b, n = row["bucket"], int(row["n"])
        if n:
            data_buckets.add(b)
        hour = bucket_start(b, HIST_WIDTH)
        acc = hour_sums.setdefault(hour, dict.fromkeys(_SUM_COLS, 0.0))
        for c in _SUM_COLS:
            acc[c] += float(row[c] or 0)
        hour_n[hour] = hour_n.get(hour, 0) + n
    per_hour = {
        hour: _stats_from_rollup(
            hour_n[hour], sums, {m: hists[m].get(hour, {}) for m in hists}, bound
        )
        for hour, sums in hour_sums.items()
    }
    total = {c: sum(h[c] for h in hour_sums.values()) for c in _SUM_COLS}
    overall_h: dict[str, dict[int, int]] = {}
    for m, per in hists.items():
        merged: dict[int, int] = {}
        for h in per.values():
            histogram.merge(merged, h)
        overall_h[m] = merged
    overall = _stats_from_rollup(sum(hour_n.values()), total, overall_h, bound)
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
    """Positions with radio readings, for the coverage map."""
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
    """The latest reading of one sensor."""

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
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """
            SELECT DISTINCT ON (device_id, name) device_id, name, unit, ts,
                   coalesce(to_jsonb(value), to_jsonb(value_string), to_jsonb(value_bool),
                            to_jsonb(value_data), to_jsonb(sum)) AS latest_value,
                   count(*) OVER w AS count, min(ts) OVER w AS first_ts
            FROM fiveg_sensor
            WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s
            WINDOW w AS (PARTITION BY device_id, name)
            ORDER BY device_id, name, ts DESC
            """,
            p,
        )
        latest = await cur.fetchall()
        await cur.execute(
            """
            SELECT DISTINCT device_id, name, time_bucket(%(width)s, ts) AS bucket
            FROM fiveg_sensor
            WHERE device_id = ANY(%(devices)s) AND ts >= %(start)s AND ts < %(end)s
            """,
            p,
        )
        buckets: dict[tuple[str, str], list[datetime]] = {}
        for b in await cur.fetchall():
            buckets.setdefault((b["device_id"], b["name"]), []).append(b["bucket"])
    return [
        SensorSummary(
            r["device_id"],
            r["name"],
            r["unit"],
            int(r["count"]),
            r["first_ts"],
            r["ts"],
            r["latest_value"],
            find_gaps(buckets.get((r["device_id"], r["name"]), []), start, end, width),
        )
        for r in latest
    ]

"""From the aggregate views to publishable rows: reading (as mebuku_opendata) is thin; the
shaping, suppression and noise are pure functions over plain records."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from core.i18n import Lang
from opendata import privacy
from opendata.datasets import (
    AGE_BANDS,
    HOUR_BANDS,
    OUTSIDE_CODE,
    OUTSIDE_NAME,
    TOTAL_CODE,
    code_name,
)
from opendata.privacy import TOTAL, CountTable, NoiseSpend, Previous

Record = dict[str, Any]

VIEWS = (
    "routes",
    "stops",
    "towns",
    "bus_boardings_stop",
    "bus_boardings_route",
    "route_punctuality",
    "mytaku_use",
    "subsidy_budget",
    "autonomy_monthly",
    "autonomy_takeovers",
    "fiveg_trial_kpis",
    "fiveg_coverage_cells",
)

PROGRAMS = {"mytaku": "MyTaku", "bus_discount": "Bus fare discount"}


class ExportError(RuntimeError):
    """The export cannot run safely (e.g. its role can read personal tables)."""


def check_role(conn: psycopg.Connection) -> None:
    """Refuse to export under a role that can read personal tables (least privilege)."""
    for table in ("public.fare_residents", "public.fare_ledger", "public.fare_taxi_rides"):
        row = conn.execute("SELECT has_table_privilege(%s, 'SELECT')", [table]).fetchone()
        if row and row[0]:
            raise ExportError(
                f"the export must run as mebuku_opendata, but this role can read {table}"
            )


def read_views(conn: psycopg.Connection) -> dict[str, list[Record]]:
    """Every opendata view's rows (small: aggregates)."""
    out: dict[str, list[Record]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for view in VIEWS:
            cur.execute(f"SELECT * FROM opendata.{view}".encode())
            out[view] = list(cur.fetchall())
    return out


def read_history(conn: psycopg.Connection) -> dict[str, Previous]:
    """What earlier releases published, per cell key (dataset/table|row|col)."""
    history: dict[str, Previous] = {}
    rows = conn.execute(
        "SELECT c.dataset, c.cell_key, c.value, c.suppressed FROM opendata_release_cells c"
        " JOIN opendata_releases r USING (release_id) ORDER BY r.created_at, r.release_id"
    ).fetchall()
    for dataset, key, value, suppressed in rows:
        full = f"{dataset}/{key}"
        prev = history.get(full)
        sticky = bool(suppressed) or (prev is not None and prev.suppressed)
        last = value if value is not None else (prev.value if prev else None)
        history[full] = Previous(last, sticky)
    return history


@dataclass
class Protection:
    """Options and outcome of protecting one dataset's count tables."""

    k: int
    history: Mapping[str, Previous]
    epsilon: float = 0.0  # for the whole dataset; split evenly over its tables
    force_rows: frozenset[str] = frozenset()
    new_history: list[tuple[str, str, float | None, bool]] = field(default_factory=list)
    spends: list[NoiseSpend] = field(default_factory=list)
    suppressed: int = 0
    cells: int = 0


@dataclass(frozen=True)
class Layout:
    """How records form tables: the table key, the row and column fields, the count and
    the measures that follow the count's suppression."""

    dataset: str
    table_of: Callable[[Record], str]
    row: str
    col: str
    count: str
    followers: tuple[str, ...] = ()
    guard: str | None = None  # a follower counting events of persons (rides): protected too


def _table_cells(records: list[Record], lay: Layout) -> dict[tuple[str, str], list[Record]]:
    cells: dict[tuple[str, str], list[Record]] = {}
    for rec in records:
        cells.setdefault((str(rec[lay.row]), str(rec[lay.col])), []).append(rec)
    return cells


def _noisy(
    counts: dict[tuple[str, str], int], name: str, eps: float, prot: Protection
) -> dict[tuple[str, str], int]:
    if eps <= 0:
        return counts
    noisy, spend = privacy.noisy_counts(counts, eps, name)
    prot.spends.append(spend)
    return noisy


def protect_records(records: Iterable[Record], lay: Layout, prot: Protection) -> list[Record]:
    """Rows of every table (interior cells present in the data plus all totals), with the
    count and its followers set to None where suppressed."""
    by_table: dict[str, list[Record]] = {}
    for rec in records:
        by_table.setdefault(lay.table_of(rec), []).append(rec)
    eps = prot.epsilon / len(by_table) if by_table and prot.epsilon > 0 else 0.0
    out: list[Record] = []
    for tkey in sorted(by_table):
        recs = by_table[tkey]
        cells = _table_cells(recs, lay)
        counts = {c: sum(int(r[lay.count] or 0) for r in rs) for c, rs in cells.items()}
        name = f"{lay.dataset}/{tkey}"
        counts = _noisy(counts, name, eps, prot)
        rows = tuple(sorted({r for r, _ in cells}))
        cols = tuple(sorted({c for _, c in cells}))
        table = CountTable(name, rows, cols, counts)
        force = [(r, c) for r in rows if r in prot.force_rows for c in (*cols, TOTAL)]
        p = privacy.protect(table, prot.k, prot.history, force)
        hidden_cells = set(p.suppressed)
        _remember(prot, lay.dataset, p)
        if lay.guard:
            hidden_cells |= _guard(
                cells,
                lay,
                p,
                prot,
                CountTable(
                    name + "#" + lay.guard,
                    rows,
                    cols,
                    {c: sum(int(r[lay.guard] or 0) for r in rs) for c, rs in cells.items()},
                ),
            )
        prot.cells += len(p.values)
        prot.suppressed += len(hidden_cells)
        template = recs[0]
        for (r, c), value in sorted(p.values.items()):
            if r != TOTAL and c != TOTAL and (r, c) not in cells:
                continue
            parts = cells.get((r, c)) or [
                x
                for (rr, cc), xs in cells.items()
                for x in xs
                if r in (rr, TOTAL) and c in (cc, TOTAL)
            ]
            row = {**template, lay.row: r, lay.col: c}
            hidden = (r, c) in hidden_cells
            row[lay.count] = None if hidden else value
            for f in lay.followers:
                row[f] = None if hidden else sum(int(x[f] or 0) for x in parts)
            out.append(row)
    return out


def _remember(prot: Protection, dataset: str, p: privacy.Protected) -> None:
    for key, value, sup in privacy.history_rows(p):
        prot.new_history.append((dataset, key.removeprefix(dataset + "/"), value, sup))


def _guard(
    cells: Mapping[tuple[str, str], list[Record]],
    lay: Layout,
    p: privacy.Protected,
    prot: Protection,
    table: CountTable,
) -> set[tuple[str, str]]:
    """Second pass over the guard measure (rides): a cell with rides but fewer than k
    persons counted in it is hidden too, with complements on the rides table itself
    (adding suppressed cells only widens what an attacker can infer from the first)."""
    force = set(p.suppressed) | {
        c for c in table.cells if table.cells[c] > 0 and p.values.get(c, 0) < prot.k
    }
    g = privacy.protect(table, 1, prot.history, force)
    _remember(prot, lay.dataset, g)
    return g.suppressed


# --- dataset shaping (pure) -------------------------------------------------------------


def _iso(v: Any) -> str:
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return "" if v is None else str(v)


@dataclass(frozen=True)
class Names:
    """Display names for codes: routes, stops and towns (from the views), and language."""

    routes: Mapping[str, str]
    stops: Mapping[str, str]
    towns: Mapping[str, str]
    population: Mapping[str, int]
    lang: Lang = "ja"

    def route(self, code: str) -> str:
        """A route's name (the id when the feed does not know it)."""
        return self.routes.get(code, code)

    def stop(self, code: str) -> str:
        """A stop's name, or Total."""
        if code == TOTAL:
            return code_name({}, TOTAL_CODE, self.lang)
        return self.stops.get(code, code)

    def town(self, code: str) -> str:
        """A town's name, Outside Maebashi, or Total."""
        if code == TOTAL:
            return code_name({}, TOTAL_CODE, self.lang)
        if code == OUTSIDE_CODE:
            return code_name({OUTSIDE_CODE: OUTSIDE_NAME}, code, self.lang)
        return self.towns.get(code, code)


def names_from(views: Mapping[str, list[Record]], lang: Lang = "ja") -> Names:
    """Names of routes, stops and towns from the reference views."""
    return Names(
        {r["route_id"]: r["route_name"] for r in views["routes"]},
        {s["stop_id"]: s["stop_name"] for s in views["stops"]},
        {t["key_code"]: t["name"] for t in views["towns"]},
        {t["key_code"]: int(t["population"]) for t in views["towns"]},
        lang,
    )


def bus_ridership_stop(recs: list[Record], n: Names, prot: Protection) -> list[Record]:
    """IC boardings by day, route, stop and hour band; tables per (day, route)."""
    lay = Layout(
        "bus_ridership_stop",
        lambda r: f"{_iso(r['service_day'])}|{r['route_id']}",
        "stop_id",
        "hour_band",
        "ic_boardings",
    )
    out = []
    for r in protect_records(recs, lay, prot):
        out.append(
            {
                "service_day": _iso(r["service_day"]),
                "route_id": r["route_id"],
                "route_name": n.route(r["route_id"]),
                "stop_id": _code(r["stop_id"]),
                "stop_name": n.stop(r["stop_id"]),
                "hour_band": TOTAL_CODE if r["hour_band"] == TOTAL else r["hour_band"],
                "hour_band_name": code_name(HOUR_BANDS, _code(r["hour_band"]), n.lang),
                "ic_boardings": r["ic_boardings"],
                "suppressed": r["ic_boardings"] is None,
            }
        )
    return out


def _code(v: str) -> str:
    return TOTAL_CODE if v == TOTAL else v


def bus_ridership_route(recs: list[Record], n: Names, prot: Protection) -> list[Record]:
    """Counted boardings by day, route and hour band; tables per day."""
    counted = [r for r in recs if r["counted_boardings"] is not None]
    lay = Layout(
        "bus_ridership_route",
        lambda r: _iso(r["service_day"]),
        "route_id",
        "hour_band",
        "counted_boardings",
    )
    out = []
    for r in protect_records(counted, lay, prot):
        route = _code(r["route_id"])
        out.append(
            {
                "service_day": _iso(r["service_day"]),
                "route_id": route,
                "route_name": code_name({}, route, n.lang)
                if route == TOTAL_CODE
                else n.route(route),
                "hour_band": _code(r["hour_band"]),
                "hour_band_name": code_name(HOUR_BANDS, _code(r["hour_band"]), n.lang),
                "counted_boardings": r["counted_boardings"],
                "suppressed": r["counted_boardings"] is None,
            }
        )
    return out


def mytaku_use(recs: list[Record], n: Names, prot: Protection) -> list[Record]:
    """Residents, rides and subsidy by month, town and age band; tables per month. Towns
    whose population is below k are suppressed whole (a join with the town table would
    otherwise describe fewer than k persons)."""
    prot.force_rows = frozenset(t for t, p in n.population.items() if p < prot.k)
    lay = Layout(
        "mytaku_use",
        lambda r: _iso(r["month"])[:7],
        "town_code",
        "age_band",
        "residents",
        ("rides", "subsidy_yen"),
        guard="rides",
    )
    out = []
    for r in protect_records(recs, lay, prot):
        town = _code(r["town_code"])
        out.append(
            {
                "month": _iso(r["month"]),
                "town_code": town,
                "town_name": n.town(r["town_code"]),
                "age_band": _code(r["age_band"]),
                "age_band_name": code_name(AGE_BANDS, _code(r["age_band"]), n.lang),
                "residents": r["residents"],
                "rides": r["rides"],
                "subsidy_yen": r["subsidy_yen"],
                "population": n.population.get(town),
                "suppressed": r["residents"] is None,
            }
        )
    return out


def plain(recs: list[Record], columns: Iterable[str], n: Names) -> list[Record]:
    """Rows of a dataset that describes no persons, with route names and ISO dates."""
    cols = list(columns)
    out = []
    for r in recs:
        row: Record = {}
        for c in cols:
            if c == "route_name":
                row[c] = n.route(r["route_id"])
            elif c == "program_name":
                row[c] = code_name(PROGRAMS, r["program"], n.lang)
            else:
                v = r.get(c)
                row[c] = _iso(v) if isinstance(v, date | datetime) else v
        out.append(row)
    return out


def sort_key(*fields: str) -> Callable[[Record], tuple[str, ...]]:
    """Stable ordering of output rows."""
    return lambda r: tuple(str(r.get(f, "")) for f in fields)

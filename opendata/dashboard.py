"""The city's EBPM dashboard (folder ``city``), built per language from the catalogue.

It answers the policy questions of the city's DX plan from the same aggregates as the
open data (grafana.ebpm_* views over the ``opendata`` schema): who uses MyTaku and where,
how subsidy spending develops against the budget, which routes lose punctuality at which
hours, and where local-5G coverage meets the council's targets. The local-5G panels read
the council's trial rollups clipped to each trial's period instead (grafana.ebpm_fiveg_*,
core/roles/migrations/0430: the exact open-data views took over 30 s at a day of 200
devices): the same sample counts, percentiles and medians within one histogram bin,
means exact. The SQL keeps stable
English column aliases; what people read comes from display names and value texts
(core/grafana.py), so the Japanese and English builds share their queries.
"""

from __future__ import annotations

from typing import Any

from core.grafana import (
    Gettext,
    axis_label,
    dashboard,
    field_units,
    names,
    panel,
    sql_label,
    sql_target,
    sql_text,
    value_texts,
)
from core.i18n import DEFAULT_LANG, N_, Lang, gettext_for
from opendata.datasets import AGE_BANDS

OTHER_TOWNS = N_("Other towns (fewer than 10 users)")
HOUR = N_("Hour")
PER_1000 = N_("Users per 1,000 residents")
# A fiscal year shown as a bar's name: "{year}" is replaced by the year (2026年度 / FY2026).
FISCAL_YEAR = N_("FY{year}")
MET: dict[str, str] = {"met": N_("Met"), "not_met": N_("Not met"), "no_data": N_("No data")}


def _texts(table: dict[str, str], _: Gettext) -> dict[str, str]:
    """A code -> words table translated, so panels show names, not codes."""
    return {code: _(text) for code, text in table.items()}


def fiscal_year_label(expr: str, _: Gettext) -> str:
    """SQL naming a fiscal year in words (``2026年度`` / ``FY2026``), never a bare number."""
    before, _sep, after = _(FISCAL_YEAR).partition("{year}")
    parts = [sql_text(before)] if before else []
    parts.append(f"({expr})::text")
    parts += [sql_text(after)] if after else []
    return " || ".join(parts)


def _mytaku_panels(_: Gettext) -> list[dict[str, Any]]:
    """Who uses MyTaku and where: towns and age bands that the subsidy does not reach."""
    towns = panel(
        "table",
        _("MyTaku users by town (range)"),
        [
            sql_target(
                f"SELECT coalesce(town_name, {sql_text(_(OTHER_TOWNS))}) AS town,"
                " sum(residents) AS residents, sum(rides) AS rides,"
                " max(population) AS population,"
                " round(1000.0 * sum(residents) / nullif(max(population), 0), 1) AS per_1000"
                " FROM grafana.ebpm_mytaku_town WHERE $__timeFilter(month)"
                " GROUP BY town_code, town_name ORDER BY 2 DESC",
                "table",
            )
        ],
        grid=(0, 0, 12, 10),
        description=_("Pickup towns; a resident counts once a month in the town of most rides."),
    )
    names(
        towns,
        {
            "town": _("Town name"),
            "residents": _("Residents using MyTaku"),
            "rides": _("Rides"),
            "population": _("Town population"),
            "per_1000": _(PER_1000),
        },
    )
    ages = panel(
        "bargauge",
        _("Share of enrolled residents using MyTaku, by age band (range)"),
        [
            sql_target(
                f"SELECT {sql_label('age_band', _texts(AGE_BANDS, _))} AS age_band,"
                " round(100.0 * sum(residents) / nullif(max(enrolled), 0), 1) AS share"
                " FROM grafana.ebpm_mytaku_age WHERE $__timeFilter(month)"
                " GROUP BY ebpm_mytaku_age.age_band ORDER BY ebpm_mytaku_age.age_band",
                "table",
            )
        ],
        grid=(12, 0, 12, 10),
        unit="percent",
        options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"]}},
    )
    names(ages, {"age_band": _("Age band"), "share": _("Share using MyTaku")})
    return [towns, ages]


def _budget_panels(_: Gettext) -> list[dict[str, Any]]:
    """Subsidy spending against the budget: when the programme needs more money or rules."""
    budget = panel(
        "bargauge",
        _("Subsidy spending against the budget per fiscal year"),
        [
            sql_target(
                f"SELECT {fiscal_year_label('fiscal_year', _)} AS fiscal_year,"
                " round(100.0 * spent_yen / nullif(budget_yen, 0), 1) AS spent_pct"
                " FROM grafana.ebpm_subsidy_budget WHERE program = 'mytaku'"
                " ORDER BY ebpm_subsidy_budget.fiscal_year",
                "table",
            )
        ],
        grid=(0, 10, 12, 8),
        unit="percent",
        thresholds=[(None, "green"), (80, "orange"), (100, "red")],
        options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"]}},
    )
    names(budget, {"fiscal_year": _("Fiscal year"), "spent_pct": _("Budget spent")})
    monthly = panel(
        "timeseries",
        _("MyTaku subsidy by month"),
        [
            sql_target(
                "SELECT month AS time, subsidy_yen AS mytaku_yen"
                " FROM grafana.ebpm_subsidy_monthly WHERE $__timeFilter(month)"
                " ORDER BY 1"
            )
        ],
        grid=(12, 10, 12, 8),
        unit="currencyJPY",
    )
    names(monthly, {"mytaku_yen": _("MyTaku subsidy")})
    return [budget, axis_label(monthly, _("Subsidy"))]


def _punctuality_panel(_: Gettext) -> dict[str, Any]:
    """Route and hour with the worst punctuality first: where a timetable change helps."""
    p = panel(
        "table",
        _("On-time share by route and hour of day (range)"),
        [
            sql_target(
                "SELECT route_name AS route, hour, sum(departures) AS departures,"
                " round(100.0 * sum(on_time) / nullif(sum(departures), 0), 1) AS on_time_pct"
                " FROM grafana.ebpm_punctuality_hourly WHERE $__timeFilter(day)"
                " GROUP BY route_name, hour ORDER BY 4, 1, 2",
                "table",
            )
        ],
        grid=(0, 18, 12, 10),
        description=_("Lowest first: the hours where a route loses punctuality."),
    )
    names(
        p,
        {
            "route": _("Route name"),
            "hour": _(HOUR),
            "departures": _("Departures"),
            "on_time_pct": _("On-time share"),
        },
    )
    return field_units(p, {"on_time_pct": "percent", "hour": "none"})


def _fiveg_panels(_: Gettext) -> list[dict[str, Any]]:
    """Local-5G trials against the council's targets, then where the coverage is."""
    return [*_fiveg_target_panels(_), _coverage_map(_)]


def _fiveg_target_panels(_: Gettext) -> list[dict[str, Any]]:
    """How many council targets are met, and each KPI's measured value against its target."""
    met = panel(
        "stat",
        _("Local 5G targets met"),
        [
            sql_target(
                "SELECT count(*) FILTER (WHERE met) AS met, count(*) AS targets"
                " FROM grafana.ebpm_fiveg_targets WHERE NOT reference",
                "table",
            )
        ],
        grid=(12, 18, 12, 4),
    )
    names(met, {"met": _("Targets met"), "targets": _("Targets")})
    kpis = panel(
        "table",
        _("Local 5G KPIs against the council's targets"),
        [
            sql_target(
                "SELECT title AS trial, label AS kpi,"
                " op || ' ' || target::text || ' ' || unit AS target,"
                " round(measured::numeric, 2) AS measured,"
                " CASE WHEN met THEN 'met' WHEN NOT met THEN 'not_met' ELSE 'no_data' END"
                " AS met"
                " FROM grafana.ebpm_fiveg_targets ORDER BY 1, 2",
                "table",
            )
        ],
        grid=(12, 22, 12, 6),
    )
    names(
        kpis,
        {
            "trial": _("Trial"),
            "kpi": _("KPI"),
            "target": _("Target"),
            "measured": _("Measured"),
            "met": _("Target met"),
        },
    )
    value_texts(kpis, "met", _texts(MET, _))
    return [met, kpis]


def _coverage_map(_: Gettext) -> dict[str, Any]:
    """Median RSRP per 50 m cell (the open-data cells, from the trial cell rollups): the gaps
    a new antenna should fill."""
    cells = panel(
        "geomap",
        _("Local 5G coverage (50 m cells, median RSRP)"),
        [
            sql_target(
                "SELECT lat, lon, rsrp_dbm_median AS rsrp_dbm, samples"
                " FROM grafana.ebpm_fiveg_cells",
                "table",
            )
        ],
        grid=(0, 28, 24, 10),
        unit="dBm",
        thresholds=[(None, "red"), (-100, "orange"), (-90, "yellow"), (-80, "green")],
    )
    names(
        cells,
        {
            "lat": _("Latitude"),
            "lon": _("Longitude"),
            "rsrp_dbm": _("Median RSRP"),
            "samples": _("Samples"),
        },
    )
    return field_units(cells, {"lat": "none", "lon": "none", "samples": "short"})


def ebpm_dashboard(lang: Lang = DEFAULT_LANG) -> dict[str, Any]:
    """The EBPM dashboard in ``lang``: evidence for city staff's policy decisions."""
    _ = gettext_for(lang)
    panels = [
        *_mytaku_panels(_),
        *_budget_panels(_),
        _punctuality_panel(_),
        *_fiveg_panels(_),
    ]
    return dashboard(
        "mebuku-ebpm",
        _("EBPM: mobility and local 5G for policy"),
        panels,
        tags=["ebpm", "opendata", "mytaku", "5g"],
        description=_("Evidence for policy from the open-data aggregates (no small groups)."),
        time_from="now-90d",
        refresh="1h",
    )


def dashboards(lang: Lang = DEFAULT_LANG) -> list[tuple[str, dict[str, Any]]]:
    """(folder, dashboard) pairs that ``mebuku grafana build`` finds via ``mebuku.dashboards``."""
    return [("city", ebpm_dashboard(lang))]

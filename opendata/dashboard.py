"""The city's EBPM dashboard (folder ``city``), in Japanese from the message catalogue.

It answers the policy questions of the city's DX plan from the same aggregates as the
open data (grafana.ebpm_* views over the ``opendata`` schema): who uses MyTaku and where,
how subsidy spending develops against the budget, which routes lose punctuality at which
hours, and where local-5G coverage meets the council's targets.
"""

from __future__ import annotations

from typing import Any

from core.grafana import dashboard, panel, sql_target
from core.i18n import N_, Lang, gettext
from opendata.datasets import AGE_BANDS

OTHER_TOWNS = N_("Other towns (fewer than 10 users)")
HOUR = N_("Hour")
PER_1000 = N_("Users per 1,000 residents")


def _case(column: str, codes: dict[str, str], lang: Lang) -> str:
    """SQL that shows a code's display name from the catalogue."""
    whens = " ".join(f"WHEN '{code}' THEN '{gettext(name, lang)}'" for code, name in codes.items())
    return f"CASE {column} {whens} ELSE {column} END"


def _q(text: str, lang: Lang) -> str:
    """A translated column alias, quoted for SQL."""
    return '"' + gettext(text, lang).replace('"', "") + '"'


def _mytaku_panels(lang: Lang) -> list[dict[str, Any]]:
    other = gettext(OTHER_TOWNS, lang)
    return [
        panel(
            "table",
            gettext("MyTaku users by town (range)", lang),
            [
                sql_target(
                    f"SELECT coalesce(town_name, '{other}') AS {_q('Town name', lang)},"
                    f" sum(residents) AS {_q('Residents using MyTaku', lang)},"
                    f" sum(rides) AS {_q('Rides', lang)},"
                    f" max(population) AS {_q('Town population', lang)},"
                    " round(1000.0 * sum(residents) / nullif(max(population), 0), 1)"
                    f" AS {_q(PER_1000, lang)}"
                    " FROM grafana.ebpm_mytaku_town WHERE $__timeFilter(month)"
                    " GROUP BY town_code, town_name ORDER BY 2 DESC",
                    "table",
                )
            ],
            grid=(0, 0, 12, 10),
            description=gettext(
                "Pickup towns; a resident counts once a month in the town of most rides.", lang
            ),
        ),
        panel(
            "bargauge",
            gettext("Share of enrolled residents using MyTaku, by age band (range)", lang),
            [
                sql_target(
                    f"SELECT {_case('age_band', AGE_BANDS, lang)} AS {_q('Age band', lang)},"
                    " round(100.0 * sum(residents) / nullif(max(enrolled), 0), 1) AS share"
                    " FROM grafana.ebpm_mytaku_age WHERE $__timeFilter(month)"
                    " GROUP BY age_band ORDER BY age_band",
                    "table",
                )
            ],
            grid=(12, 0, 12, 10),
            unit="percent",
            options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"]}},
        ),
    ]


def _budget_panels(lang: Lang) -> list[dict[str, Any]]:
    return [
        panel(
            "bargauge",
            gettext("Subsidy spending against the budget per fiscal year", lang),
            [
                sql_target(
                    f"SELECT fiscal_year::text AS {_q('Fiscal year', lang)},"
                    " round(100.0 * spent_yen / nullif(budget_yen, 0), 1) AS spent_pct"
                    " FROM grafana.ebpm_subsidy_budget WHERE program = 'mytaku'"
                    " ORDER BY fiscal_year",
                    "table",
                )
            ],
            grid=(0, 10, 12, 8),
            unit="percent",
            thresholds=[(None, "green"), (80, "orange"), (100, "red")],
            options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"]}},
        ),
        panel(
            "timeseries",
            gettext("MyTaku subsidy by month", lang),
            [
                sql_target(
                    "SELECT month AS time, subsidy_yen AS mytaku_yen"
                    " FROM grafana.ebpm_subsidy_monthly WHERE $__timeFilter(month)"
                    " ORDER BY 1"
                )
            ],
            grid=(12, 10, 12, 8),
            unit="currencyJPY",
        ),
    ]


def _operations_panels(lang: Lang) -> list[dict[str, Any]]:
    return [
        panel(
            "table",
            gettext("On-time share by route and hour of day (range)", lang),
            [
                sql_target(
                    f"SELECT route_name AS {_q('Route name', lang)}, hour AS {_q(HOUR, lang)},"
                    f" sum(departures) AS {_q('Departures', lang)},"
                    " round(100.0 * sum(on_time) / nullif(sum(departures), 0), 1)"
                    f" AS {_q('On-time share', lang)}"
                    " FROM grafana.ebpm_punctuality_hourly WHERE $__timeFilter(day)"
                    " GROUP BY route_name, hour ORDER BY 4, 1, 2",
                    "table",
                )
            ],
            grid=(0, 18, 12, 10),
            description=gettext("Lowest first: the hours where a route loses punctuality.", lang),
        ),
        panel(
            "stat",
            gettext("Local 5G targets met", lang),
            [
                sql_target(
                    "SELECT count(*) FILTER (WHERE met) AS met, count(*) AS targets"
                    " FROM grafana.ebpm_fiveg_targets WHERE NOT reference",
                    "table",
                )
            ],
            grid=(12, 18, 12, 4),
        ),
        panel(
            "table",
            gettext("Local 5G KPIs against the council's targets", lang),
            [
                sql_target(
                    f"SELECT title AS {_q('Trial', lang)}, label AS {_q('KPI', lang)},"
                    f" op || ' ' || target::text || ' ' || unit AS {_q('Target', lang)},"
                    f" round(measured::numeric, 2) AS {_q('Measured', lang)},"
                    f" met AS {_q('Target met', lang)}"
                    " FROM grafana.ebpm_fiveg_targets ORDER BY 1, 2",
                    "table",
                )
            ],
            grid=(12, 22, 12, 6),
        ),
        panel(
            "geomap",
            gettext("Local 5G coverage (50 m cells, median RSRP)", lang),
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
        ),
    ]


def dashboards(lang: Lang = "ja") -> list[tuple[str, dict[str, Any]]]:
    """(folder, dashboard JSON): the EBPM dashboard for city staff."""
    panels = [*_mytaku_panels(lang), *_budget_panels(lang), *_operations_panels(lang)]
    return [
        (
            "city",
            dashboard(
                "mebuku-ebpm",
                gettext("EBPM: mobility and local 5G for policy", lang),
                panels,
                tags=["ebpm", "opendata", "mytaku", "5g"],
                description=gettext(
                    "Evidence for policy from the open-data aggregates (no small groups).", lang
                ),
                time_from="now-90d",
                refresh="1h",
            ),
        )
    ]

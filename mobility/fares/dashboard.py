"""The city's settlement and subsidy dashboard (folder ``city``).

Grafana reads as ``mebuku_grafana``, which sees only the aggregated ``grafana.fares_*``
views (core/roles/migrations): no resident, card or ride record, so a viewer who edits a
query still gets totals only. Ride-time panels work at the views' one-hour resolution.
"""

from __future__ import annotations

from typing import Any

from core.grafana import dashboard, panel, sql_target

THIS_MONTH = "date_trunc('month', now() AT TIME ZONE 'Asia/Tokyo')::date"


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    panels = [
        panel(
            "stat",
            "Owed to operators this month",
            [
                sql_target(
                    f"SELECT coalesce(sum(amount_yen), 0) AS yen FROM grafana.fares_ledger_monthly"
                    f" WHERE period = {THIS_MONTH}",
                    "table",
                )
            ],
            grid=(0, 0, 6, 4),
            unit="currencyJPY",
            description="Ledger total for the current settlement month (subsidies, discounts,"
            " reversals): what `mebuku settle` will bill.",
        ),
        panel(
            "stat",
            "Subsidised taxi rides (range)",
            [
                sql_target(
                    "SELECT coalesce(sum(lines), 0) AS rides FROM grafana.fares_ledger_hourly"
                    " WHERE kind = 'mytaku' AND $__timeFilter(hour)",
                    "table",
                )
            ],
            grid=(6, 0, 6, 4),
        ),
        panel(
            "stat",
            "Enrolled residents / active cards",
            [
                sql_target(
                    "SELECT residents, active_cards AS cards FROM grafana.fares_enrolment",
                    "table",
                )
            ],
            grid=(12, 0, 6, 4),
        ),
        panel(
            "stat",
            "Rides flagged for review (range)",
            [
                sql_target(
                    "SELECT coalesce(sum(flagged), 0) AS flagged"
                    " FROM grafana.fares_taxi_rides_hourly WHERE $__timeFilter(hour)",
                    "table",
                )
            ],
            grid=(18, 0, 6, 4),
            thresholds=[(None, "green"), (1, "orange")],
        ),
        panel(
            "timeseries",
            "Subsidy and discount yen",
            [
                sql_target(
                    "SELECT $__timeGroupAlias(hour, $__interval),"
                    " coalesce(sum(amount_yen) FILTER (WHERE source = 'taxi'), 0) AS mytaku_yen,"
                    " coalesce(sum(amount_yen) FILTER (WHERE source = 'bus'), 0)"
                    " AS bus_discount_yen"
                    " FROM grafana.fares_ledger_hourly WHERE $__timeFilter(hour)"
                    " GROUP BY 1 ORDER BY 1"
                )
            ],
            grid=(0, 4, 16, 8),
            unit="currencyJPY",
        ),
        panel(
            "piechart",
            "Taxi riders by decision (range)",
            [
                sql_target(
                    "SELECT reason, sum(riders) AS riders FROM grafana.fares_taxi_decisions_hourly"
                    " WHERE $__timeFilter(hour) GROUP BY 1 ORDER BY 2 DESC",
                    "table",
                )
            ],
            grid=(16, 4, 8, 8),
            description="Why riders were or were not subsidised (limits, eligibility, hours).",
        ),
        panel(
            "table",
            "This month by operator",
            [
                sql_target(
                    "SELECT operator_id AS operator, sum(lines) AS lines,"
                    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'mytaku'), 0) AS mytaku_yen,"
                    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'bus_discount'), 0)"
                    " AS bus_discount_yen,"
                    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'reversal'), 0)"
                    " AS reversal_yen,"
                    " sum(amount_yen) AS total_yen FROM grafana.fares_ledger_monthly"
                    f" WHERE period = {THIS_MONTH}"
                    " GROUP BY 1 ORDER BY 1",
                    "table",
                )
            ],
            grid=(0, 12, 24, 8),
        ),
    ]
    return [
        (
            "city",
            dashboard(
                "mebuku-fares",
                "Fares and subsidies: settlement",
                panels,
                tags=["fares", "mytaku", "settlement"],
                description="MyTaku taxi subsidy and citizen bus discounts from the ledger.",
            ),
        )
    ]

"""The city's settlement and subsidy dashboard (folder ``city``)."""

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
                    f"SELECT coalesce(sum(amount_yen), 0) AS yen FROM fare_ledger"
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
                    "SELECT count(*) AS rides FROM fare_ledger WHERE kind = 'mytaku'"
                    " AND $__timeFilter(ride_at)",
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
                    "SELECT (SELECT count(*) FROM fare_residents) AS residents,"
                    " (SELECT count(*) FROM fare_ic_cards WHERE status = 'active') AS cards",
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
                    "SELECT count(*) AS flagged FROM fare_taxi_rides"
                    " WHERE flags <> '{}' AND $__timeFilter(pickup_at)",
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
                    "SELECT $__timeGroupAlias(ride_at, $__interval),"
                    " coalesce(sum(amount_yen) FILTER (WHERE source = 'taxi'), 0) AS mytaku_yen,"
                    " coalesce(sum(amount_yen) FILTER (WHERE source = 'bus'), 0)"
                    " AS bus_discount_yen"
                    " FROM fare_ledger WHERE $__timeFilter(ride_at) GROUP BY 1 ORDER BY 1"
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
                    "SELECT reason, count(*) AS riders FROM fare_taxi_riders"
                    " WHERE $__timeFilter(pickup_at) GROUP BY 1 ORDER BY 2 DESC",
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
                    "SELECT operator_id AS operator, count(*) AS lines,"
                    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'mytaku'), 0) AS mytaku_yen,"
                    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'bus_discount'), 0)"
                    " AS bus_discount_yen,"
                    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'reversal'), 0)"
                    " AS reversal_yen,"
                    f" sum(amount_yen) AS total_yen FROM fare_ledger WHERE period = {THIS_MONTH}"
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

"""The city's settlement and subsidy dashboard (folder ``city``).

Grafana reads as ``mebuku_grafana``, which sees only the aggregated ``grafana.fares_*``
views (core/roles/migrations): no resident, card or ride record, so a viewer who edits a
query still gets totals only. Ride-time panels work at the views' one-hour resolution.
Operators are shown by their registered names (core/operators.toml); the id stays in a
hidden column.
"""

from __future__ import annotations

from typing import Any

from core.grafana import (
    Gettext,
    axis_label,
    dashboard,
    field_units,
    hidden,
    names,
    panel,
    sql_label,
    sql_target,
    value_texts,
)
from core.i18n import DEFAULT_LANG, N_, Lang, gettext_for
from core.operators import registry
from mobility.fares.rules import Reason

THIS_MONTH = "date_trunc('month', now() AT TIME ZONE 'Asia/Tokyo')::date"

# Why a taxi rider was or was not subsidised (mobility.fares.rules.Reason).
REASONS: dict[str, str] = {
    Reason.SUBSIDISED: N_("Subsidised"),
    Reason.NOT_REGISTERED: N_("Card not registered"),
    Reason.DUPLICATE_RIDER: N_("Same rider twice"),
    Reason.NOT_ELIGIBLE: N_("Not eligible"),
    Reason.DAILY_LIMIT: N_("Daily limit reached"),
    Reason.ANNUAL_LIMIT: N_("Annual limit reached"),
    Reason.OUTSIDE_HOURS: N_("Outside subsidised hours"),
    Reason.OUTSIDE_CITY: N_("Outside the city"),
    Reason.IMPLAUSIBLE: N_("Implausible ride"),
    Reason.ZERO_SUBSIDY: N_("No subsidy due"),
}

BY_OPERATOR = (
    "SELECT operator_id AS operator, sum(lines) AS lines,"
    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'mytaku'), 0) AS mytaku_yen,"
    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'bus_discount'), 0)"
    " AS bus_discount_yen,"
    " coalesce(sum(amount_yen) FILTER (WHERE kind = 'reversal'), 0)"
    " AS reversal_yen,"
    " sum(amount_yen) AS total_yen, operator_id FROM grafana.fares_ledger_monthly"
    f" WHERE period = {THIS_MONTH}"
    " GROUP BY 1, operator_id ORDER BY 1"
)


def operator_names() -> dict[str, str]:
    """Operator id -> registered legal name: settlement is addressed to the name, not the id."""
    return {op.id: op.legal_name for op in registry().operators}


def _by_operator(_: Gettext) -> dict[str, Any]:
    """This month's amounts per operator by name: the lines of the monthly settlement."""
    p = panel(
        "table",
        _("This month by operator"),
        [sql_target(BY_OPERATOR, "table")],
        grid=(0, 12, 24, 8),
        unit="currencyJPY",
    )
    names(
        p,
        {
            "operator": _("Operator"),
            "lines": _("Ledger lines"),
            "mytaku_yen": _("MyTaku subsidy"),
            "bus_discount_yen": _("Bus discounts"),
            "reversal_yen": _("Reversals"),
            "total_yen": _("Total"),
        },
    )
    field_units(p, {"lines": "short", "operator": "none"})
    value_texts(p, "operator", operator_names())
    return hidden(p, ["operator_id"])


def _stats(_: Gettext) -> list[dict[str, Any]]:
    """The headline numbers above the charts: what is owed, rides, registered residents."""
    return [
        names(
            panel(
                "stat",
                _("Owed to operators this month"),
                [
                    sql_target(
                        "SELECT coalesce(sum(amount_yen), 0) AS yen"
                        f" FROM grafana.fares_ledger_monthly WHERE period = {THIS_MONTH}",
                        "table",
                    )
                ],
                grid=(0, 0, 6, 4),
                unit="currencyJPY",
                description=_(
                    "Ledger total for the current settlement month (subsidies, discounts, "
                    "reversals): what the monthly settlement will bill."
                ),
            ),
            {"yen": _("Owed this month")},
        ),
        names(
            panel(
                "stat",
                _("Subsidised taxi rides (range)"),
                [
                    sql_target(
                        "SELECT coalesce(sum(lines), 0) AS rides FROM grafana.fares_ledger_hourly"
                        " WHERE kind = 'mytaku' AND $__timeFilter(hour)",
                        "table",
                    )
                ],
                grid=(6, 0, 6, 4),
            ),
            {"rides": _("Rides")},
        ),
        names(
            panel(
                "stat",
                _("Registered residents / active cards"),
                [
                    sql_target(
                        "SELECT residents, active_cards AS cards FROM grafana.fares_enrolment",
                        "table",
                    )
                ],
                grid=(12, 0, 6, 4),
            ),
            {"residents": _("Registered residents"), "cards": _("Active cards")},
        ),
        names(
            panel(
                "stat",
                _("Rides flagged for review (range)"),
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
            {"flagged": _("Flagged rides")},
        ),
    ]


def fares_dashboard(lang: Lang = DEFAULT_LANG) -> dict[str, Any]:
    """The settlement dashboard in ``lang``: what the city owes each operator, and why."""
    _ = gettext_for(lang)
    panels = [
        *_stats(_),
        _amounts_panel(_),
        _decisions_panel(_),
        _by_operator(_),
    ]
    return dashboard(
        "mebuku-fares",
        _("Fares and subsidies: settlement"),
        panels,
        tags=["fares", "mytaku", "settlement"],
        description=_("MyTaku taxi subsidy and citizen bus discounts from the ledger."),
    )


def _amounts_panel(_: Gettext) -> dict[str, Any]:
    """Subsidy and discount yen over time: the spending the budget is checked against."""
    return names(
        axis_label(
            panel(
                "timeseries",
                _("Subsidy and discount yen"),
                [
                    sql_target(
                        "SELECT $__timeGroupAlias(hour, $__interval),"
                        " coalesce(sum(amount_yen) FILTER (WHERE source = 'taxi'), 0)"
                        " AS mytaku_yen,"
                        " coalesce(sum(amount_yen) FILTER (WHERE source = 'bus'), 0)"
                        " AS bus_discount_yen"
                        " FROM grafana.fares_ledger_hourly WHERE $__timeFilter(hour)"
                        " GROUP BY 1 ORDER BY 1"
                    )
                ],
                grid=(0, 4, 16, 8),
                unit="currencyJPY",
            ),
            _("Amount"),
        ),
        {"mytaku_yen": _("MyTaku subsidy"), "bus_discount_yen": _("Bus discounts")},
    )


def _decisions_panel(_: Gettext) -> dict[str, Any]:
    """Taxi riders by subsidy decision in words: staff answer "why was I not subsidised?"."""
    reason = sql_label("reason", {k: _(v) for k, v in REASONS.items()})
    return names(
        panel(
            "piechart",
            _("Taxi riders by decision (range)"),
            [
                sql_target(
                    f"SELECT {reason} AS reason, sum(riders) AS riders"
                    " FROM grafana.fares_taxi_decisions_hourly"
                    " WHERE $__timeFilter(hour) GROUP BY 1 ORDER BY 2 DESC",
                    "table",
                )
            ],
            grid=(16, 4, 8, 8),
            description=_("Why riders were or were not subsidised (limits, eligibility, hours)."),
        ),
        {"riders": _("Riders"), "reason": _("Decision")},
    )


def dashboards(lang: Lang = DEFAULT_LANG) -> list[tuple[str, dict[str, Any]]]:
    """(folder, dashboard) pairs that ``mebuku grafana build`` finds via ``mebuku.dashboards``."""
    return [("city", fares_dashboard(lang))]

"""The published datasets and their data dictionaries (one place: CSV headers, the
Table Schema files, the DCAT catalogue and the dashboards' titles all come from here).

Column titles are gettext message ids (English); the CSV header is the Japanese title
(自治体標準オープンデータセット conventions: one header row, Japanese column names, code
columns beside name columns, ISO 8601 dates) and the English alias is the column's
``name`` in the data dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.i18n import N_, Lang, gettext

ColumnType = Literal["string", "date", "integer", "number", "boolean"]

HOUR_BANDS = {
    "early": N_("Before 7:00"),
    "am_peak": N_("7:00-9:00 (morning peak)"),
    "midday": N_("9:00-16:00"),
    "pm_peak": N_("16:00-19:00 (evening peak)"),
    "evening": N_("After 19:00"),
}
AGE_BANDS = {
    "under65": N_("Under 65"),
    "65to74": N_("65-74"),
    "75to84": N_("75-84"),
    "85plus": N_("85 and over"),
    "unknown": N_("Age unknown"),
}
TOTAL_CODE = "_total"
TOTAL_NAME = N_("Total")
OUTSIDE_CODE = "_outside"
OUTSIDE_NAME = N_("Outside Maebashi")


@dataclass(frozen=True)
class Column:
    """One column: English alias, title (msgid), type, unit and code list."""

    name: str
    title: str
    type: ColumnType
    unit: str = ""
    codes: tuple[str, ...] = ()
    required: bool = True

    def header(self, lang: Lang = "ja") -> str:
        """The CSV header of this column in ``lang`` (Japanese by default)."""
        return gettext(self.title, lang)


@dataclass(frozen=True)
class Dataset:
    """One published dataset: identity, titles, file format and columns."""

    id: str
    title: str
    description: str
    fmt: Literal["csv", "geojson", "zip"]
    columns: tuple[Column, ...] = ()
    keywords: tuple[str, ...] = ()
    protected: bool = False  # counts about persons: suppressed below k

    @property
    def filename(self) -> str:
        """The file name inside a release."""
        ext = {"csv": "csv", "geojson": "geojson", "zip": "zip"}[self.fmt]
        return f"{self.id}.{ext}"

    @property
    def media_type(self) -> str:
        """IANA media type of the file."""
        return {
            "csv": "text/csv",
            "geojson": "application/geo+json",
            "zip": "application/zip",
        }[self.fmt]


def _c(name: str, title: str, type_: ColumnType, unit: str = "", **kw: object) -> Column:
    return Column(name, title, type_, unit, **kw)  # type: ignore[arg-type]


DAY = _c("service_day", N_("Service day"), "date")
MONTH = _c("month", N_("Month"), "date")
ROUTE_ID = _c("route_id", N_("Route ID"), "string")
ROUTE_NAME = _c("route_name", N_("Route name"), "string")
HOUR_BAND = _c("hour_band", N_("Hour band code"), "string", codes=(*HOUR_BANDS, TOTAL_CODE))
HOUR_BAND_NAME = _c("hour_band_name", N_("Hour band"), "string")
SUPPRESSED = Column("suppressed", N_("Suppressed"), "boolean")

DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "bus_ridership_stop",
        N_("Bus boardings by stop and hour band (IC cards)"),
        N_(
            "Boardings recorded by IC-card taps, by service day, route, boarding stop and "
            "hour band. Stop rows named Total are the route's totals."
        ),
        "csv",
        (
            DAY,
            ROUTE_ID,
            ROUTE_NAME,
            _c("stop_id", N_("Stop ID"), "string"),
            _c("stop_name", N_("Stop name"), "string"),
            HOUR_BAND,
            HOUR_BAND_NAME,
            _c("ic_boardings", N_("IC-card boardings"), "integer", "persons", required=False),
            SUPPRESSED,
        ),
        ("バス", "乗降客数", "IC カード"),
        protected=True,
    ),
    Dataset(
        "bus_ridership_route",
        N_("Bus boardings by route and hour band (passenger counters)"),
        N_("Boardings counted on board (automatic passenger counters), by day, route, hour band."),
        "csv",
        (
            DAY,
            ROUTE_ID,
            ROUTE_NAME,
            HOUR_BAND,
            HOUR_BAND_NAME,
            _c("counted_boardings", N_("Counted boardings"), "integer", "persons", required=False),
            SUPPRESSED,
        ),
        ("バス", "乗降客数"),
        protected=True,
    ),
    Dataset(
        "route_punctuality",
        N_("Bus punctuality and headway regularity by route and day"),
        N_(
            "Departures, on-time departures (-1 to +5 minutes), mean and 90th-percentile "
            "delay and headway regularity, by route and service day."
        ),
        "csv",
        (
            DAY,
            ROUTE_ID,
            ROUTE_NAME,
            _c("departures", N_("Departures"), "integer", "departures"),
            _c("on_time", N_("On-time departures"), "integer", "departures"),
            _c("on_time_share", N_("On-time share"), "number", "ratio", required=False),
            _c("mean_delay_s", N_("Mean delay"), "number", "s", required=False),
            _c("p90_delay_s", N_("Delay, 90th percentile"), "number", "s", required=False),
            _c("headway_cv", N_("Headway coefficient of variation"), "number", required=False),
            _c("headway_deviation", N_("Headway deviation"), "number", "ratio", required=False),
        ),
        ("バス", "定時性"),
    ),
    Dataset(
        "mytaku_use",
        N_("MyTaku use by town and age band"),
        N_(
            "MyTaku (fare-subsidised taxi) rides, subsidy and residents using it by month, "
            "pickup town (町丁) and age band at the ride. Each resident is counted once a "
            "month. Cells describing fewer than k residents are suppressed."
        ),
        "csv",
        (
            MONTH,
            _c("town_code", N_("Town code"), "string"),
            _c("town_name", N_("Town name"), "string"),
            _c("age_band", N_("Age band code"), "string", codes=(*AGE_BANDS, TOTAL_CODE)),
            _c("age_band_name", N_("Age band"), "string"),
            _c("residents", N_("Residents using MyTaku"), "integer", "persons", required=False),
            _c("rides", N_("Rides"), "integer", "rides", required=False),
            _c("subsidy_yen", N_("Subsidy"), "integer", "JPY", required=False),
            _c("population", N_("Town population"), "integer", "persons", required=False),
            SUPPRESSED,
        ),
        ("マイタク", "デマンド交通", "高齢者"),
        protected=True,
    ),
    Dataset(
        "subsidy_budget",
        N_("Fare subsidy spending and budget by fiscal year"),
        N_("Subsidy paid (ledger) and the budget, by fiscal year (April to March) and programme."),
        "csv",
        (
            _c("fiscal_year", N_("Fiscal year"), "integer"),
            _c("program", N_("Programme code"), "string", codes=("mytaku", "bus_discount")),
            _c("program_name", N_("Programme"), "string"),
            _c("spent_yen", N_("Spent"), "integer", "JPY"),
            _c("budget_yen", N_("Budget"), "integer", "JPY", required=False),
        ),
        ("マイタク", "予算"),
    ),
    Dataset(
        "autonomy_monthly",
        N_("Autonomous bus operation by month"),
        N_("Distance driven, autonomous share and takeovers per 100 km, by month."),
        "csv",
        (
            MONTH,
            _c("km", N_("Distance"), "number", "km"),
            _c("autonomous_km", N_("Autonomous distance"), "number", "km"),
            _c("autonomous_share", N_("Autonomous share"), "number", "ratio", required=False),
            _c("takeovers", N_("Takeovers"), "integer", "takeovers"),
            _c("takeovers_per_100km", N_("Takeovers per 100 km"), "number", required=False),
        ),
        ("自動運転", "バス"),
    ),
    Dataset(
        "autonomy_takeovers",
        N_("Autonomous bus takeovers by cause and month"),
        N_("Takeovers (the driver took over) by cause and month, per 100 km driven."),
        "csv",
        (
            MONTH,
            _c("cause", N_("Cause code"), "string"),
            _c("takeovers", N_("Takeovers"), "integer", "takeovers"),
            _c("per_100km", N_("Takeovers per 100 km"), "number", required=False),
        ),
        ("自動運転", "バス"),
    ),
    Dataset(
        "fiveg_trial_kpis",
        N_("Local 5G trials: KPIs against targets"),
        N_("Each trial's targets with the value measured over its devices and period."),
        "csv",
        (
            _c("trial_id", N_("Trial ID"), "string"),
            _c("title", N_("Trial"), "string"),
            _c("theme", N_("Theme"), "string", codes=("transport", "education", "emergency")),
            _c("period_start", N_("Period start"), "date"),
            _c("period_end", N_("Period end"), "date"),
            _c("kpi", N_("KPI code"), "string"),
            _c("label", N_("KPI"), "string"),
            _c("unit", N_("Unit"), "string"),
            _c("op", N_("Comparison"), "string", codes=(">=", "<=")),
            _c("target", N_("Target"), "number"),
            _c("measured", N_("Measured"), "number", required=False),
            _c("samples", N_("Samples"), "integer"),
            _c("met", N_("Target met"), "boolean", required=False),
        ),
        ("5G", "ローカル5G"),
    ),
    Dataset(
        "fiveg_coverage_cells",
        N_("Local 5G coverage in 50 m cells"),
        N_("Median RSRP and throughput per 50 m cell and trial (cells with 10+ samples)."),
        "geojson",
        (
            _c("trial_id", N_("Trial ID"), "string"),
            _c("cell", N_("Cell"), "string"),
            _c("samples", N_("Samples"), "integer"),
            _c("rsrp_dbm_median", N_("Median RSRP"), "number", "dBm", required=False),
            _c("dl_mbps_median", N_("Median downlink"), "number", "Mbit/s", required=False),
            _c("ul_mbps_median", N_("Median uplink"), "number", "Mbit/s", required=False),
        ),
        ("5G", "エリア"),
    ),
    Dataset(
        "towns",
        N_("Town blocks of Maebashi with population"),
        N_("Town-block (町丁) polygons with population and households (2025-06-30)."),
        "geojson",
        (
            _c("town_code", N_("Town code"), "string"),
            _c("town_name", N_("Town name"), "string"),
            _c("population", N_("Town population"), "integer", "persons"),
            _c("households", N_("Households"), "integer", "households"),
        ),
        ("町丁", "人口"),
    ),
    Dataset(
        "gtfs_jp",
        N_("Bus timetable (GTFS-JP, static)"),
        N_("The static GTFS-JP feed the platform runs on (群馬中央バス, CC BY 4.0)."),
        "zip",
        keywords=("GTFS", "バス", "時刻表"),
    ),
)

BY_ID = {d.id: d for d in DATASETS}


def code_name(codes: dict[str, str], code: str, lang: Lang = "ja") -> str:
    """The display name of a code (Total for the total code)."""
    if code == TOTAL_CODE:
        return gettext(TOTAL_NAME, lang)
    return gettext(codes.get(code, code), lang)

"""Which files and columns of GTFS / GTFS-JP are loaded, with their types.

Kept as data so the parser stays generic: a column spec names the CSV header, the table
column, a value kind and whether the value must be present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "int", "float", "time", "date", "bool01"]


@dataclass(frozen=True)
class Column:
    """A GTFS column: its type, whether it is required and the database column it goes to."""

    name: str
    kind: Kind = "text"
    required: bool = False
    db: str | None = None  # table column when it differs from the CSV header

    @property
    def db_name(self) -> str:
        """The database column (GTFS names that clash with SQL are renamed)."""
        return self.db or self.name


@dataclass(frozen=True)
class FileSpec:
    """A GTFS file and the table it is imported into."""

    filename: str
    table: str
    columns: tuple[Column, ...]
    required: bool = False

    @property
    def required_headers(self) -> list[str]:
        """The columns a file must have."""
        return [c.name for c in self.columns if c.required]


C = Column
FILES: tuple[FileSpec, ...] = (
    FileSpec(
        "agency.txt",
        "gtfs_agency",
        (
            C("agency_id", required=True),
            C("agency_name", required=True),
            C("agency_url", required=True),
            C("agency_timezone", required=True),
            C("agency_lang"),
            C("agency_phone"),
            C("agency_fare_url"),
            C("agency_email"),
        ),
        required=True,
    ),
    FileSpec(
        "agency_jp.txt",
        "gtfs_agency_jp",
        (
            C("agency_id", required=True),
            C("agency_official_name"),
            C("agency_zip_number"),
            C("agency_address"),
            C("agency_president_pos"),
            C("agency_president_name"),
        ),
    ),
    FileSpec(
        "routes.txt",
        "gtfs_routes",
        (
            C("route_id", required=True),
            C("agency_id", required=True),
            C("route_short_name"),
            C("route_long_name"),
            C("route_desc"),
            C("route_type", "int", required=True),
            C("route_url"),
            C("route_color"),
            C("route_text_color"),
            C("jp_parent_route_id"),
        ),
        required=True,
    ),
    FileSpec(
        "stops.txt",
        "gtfs_stops",
        (
            C("stop_id", required=True),
            C("stop_code"),
            C("stop_name"),
            C("stop_desc"),
            C("stop_lat", "float", required=True),
            C("stop_lon", "float", required=True),
            C("zone_id"),
            C("stop_url"),
            C("location_type", "int"),
            C("parent_station"),
            C("platform_code"),
            C("wheelchair_boarding", "int"),
        ),
        required=True,
    ),
    FileSpec(
        "trips.txt",
        "gtfs_trips",
        (
            C("trip_id", required=True),
            C("route_id", required=True),
            C("service_id", required=True),
            C("trip_headsign"),
            C("trip_short_name"),
            C("direction_id", "int"),
            C("block_id"),
            C("shape_id"),
            C("wheelchair_accessible", "int"),
            C("bikes_allowed", "int"),
            # GTFS-JP extensions (標準的なバス情報フォーマット): trip description, its
            # symbol, the operating office and the stopping pattern.
            C("jp_trip_desc"),
            C("jp_trip_desc_symbol"),
            C("jp_office_id"),
            C("jp_pattern_id"),
        ),
        required=True,
    ),
    FileSpec(
        "stop_times.txt",
        "gtfs_stop_times",
        (
            C("trip_id", required=True),
            C("stop_sequence", "int", required=True),
            C("arrival_time", "time", db="arrival_s"),
            C("departure_time", "time", db="departure_s"),
            C("stop_id", required=True),
            C("stop_headsign"),
            C("pickup_type", "int"),
            C("drop_off_type", "int"),
            C("shape_dist_traveled", "float"),
            C("timepoint", "int"),
        ),
        required=True,
    ),
    FileSpec(
        "shapes.txt",
        "gtfs_shapes",
        (
            C("shape_id", required=True),
            C("shape_pt_sequence", "int", required=True),
            C("shape_pt_lat", "float", required=True),
            C("shape_pt_lon", "float", required=True),
            C("shape_dist_traveled", "float"),
        ),
    ),
    FileSpec(
        "calendar.txt",
        "gtfs_calendar",
        (
            C("service_id", required=True),
            *(
                C(d, "bool01", required=True)
                for d in (
                    "monday",
                    "tuesday",
                    "wednesday",
                    "thursday",
                    "friday",
                    "saturday",
                    "sunday",
                )
            ),
            C("start_date", "date", required=True),
            C("end_date", "date", required=True),
        ),
    ),
    FileSpec(
        "calendar_dates.txt",
        "gtfs_calendar_dates",
        (
            C("service_id", required=True),
            C("date", "date", required=True),
            C("exception_type", "int", required=True),
        ),
    ),
    FileSpec(
        "fare_attributes.txt",
        "gtfs_fare_attributes",
        (
            C("fare_id", required=True),
            C("price", "float", required=True),
            C("currency_type", required=True),
            C("payment_method", "int", required=True),
            C("transfers", "int"),
            C("agency_id"),
            C("transfer_duration", "int"),
        ),
    ),
    FileSpec(
        "fare_rules.txt",
        "gtfs_fare_rules",
        (
            C("fare_id", required=True),
            C("route_id"),
            C("origin_id"),
            C("destination_id"),
            C("contains_id"),
        ),
    ),
    FileSpec(
        "frequencies.txt",
        "gtfs_frequencies",
        (
            C("trip_id", required=True),
            C("start_time", "time", required=True, db="start_s"),
            C("end_time", "time", required=True, db="end_s"),
            C("headway_secs", "int", required=True),
            C("exact_times", "int"),
        ),
    ),
    FileSpec(
        "transfers.txt",
        "gtfs_transfers",
        (
            C("from_stop_id"),
            C("to_stop_id"),
            C("transfer_type", "int", required=True),
            C("min_transfer_time", "int"),
            C("from_route_id"),
            C("to_route_id"),
            C("from_trip_id"),
            C("to_trip_id"),
        ),
    ),
    FileSpec(
        "translations.txt",
        "gtfs_translations",
        (
            C("table_name"),
            C("field_name"),
            C("language"),
            C("lang", db="language"),
            C("translation", required=True),
            C("record_id"),
            C("record_sub_id"),
            C("field_value"),
            C("trans_id"),
        ),
    ),
    FileSpec(
        "feed_info.txt",
        "gtfs_feed_info",
        (
            C("feed_publisher_name", required=True),
            C("feed_publisher_url", required=True),
            C("feed_lang", required=True),
            C("feed_start_date", "date"),
            C("feed_end_date", "date"),
            C("feed_version", db="feed_version_name"),
            C("feed_contact_email"),
            C("feed_contact_url"),
        ),
    ),
)
FILES_BY_NAME = {f.filename: f for f in FILES}

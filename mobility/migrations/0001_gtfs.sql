-- Versioned GTFS / GTFS-JP static feeds. Every row carries its feed_version; exactly one
-- version is current (partial unique index). An import loads a whole new version with
-- COPY and flips `is_current` in the same transaction, so readers see either the old or
-- the new feed, never a mix. Times are seconds after the service day's noon-minus-12h
-- (GTFS semantics: 25:10:00 = 90600), so trips past midnight keep their order.

CREATE TABLE gtfs_feed_versions (
    id                integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    imported_at       timestamptz NOT NULL DEFAULT now(),
    source            text        NOT NULL,
    sha256            text        NOT NULL,
    is_current        boolean     NOT NULL DEFAULT false,
    feed_start_date   date,
    feed_end_date     date,
    feed_version_name text,
    row_counts        jsonb       NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX gtfs_feed_versions_one_current ON gtfs_feed_versions (is_current)
    WHERE is_current;

CREATE FUNCTION gtfs_current_version() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT id FROM gtfs_feed_versions WHERE is_current
$$;

CREATE TABLE gtfs_agency (
    feed_version    integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    agency_id       text    NOT NULL,
    agency_name     text    NOT NULL,
    agency_url      text    NOT NULL,
    agency_timezone text    NOT NULL,
    agency_lang     text,
    agency_phone    text,
    agency_fare_url text,
    agency_email    text,
    PRIMARY KEY (feed_version, agency_id)
);

CREATE TABLE gtfs_agency_jp (
    feed_version          integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    agency_id             text    NOT NULL,
    agency_official_name  text,
    agency_zip_number     text,
    agency_address        text,
    agency_president_pos  text,
    agency_president_name text,
    PRIMARY KEY (feed_version, agency_id)
);

CREATE TABLE gtfs_routes (
    feed_version       integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    route_id           text    NOT NULL,
    agency_id          text    NOT NULL,
    route_short_name   text,
    route_long_name    text,
    route_desc         text,
    route_type         integer NOT NULL,
    route_url          text,
    route_color        text,
    route_text_color   text,
    jp_parent_route_id text,
    PRIMARY KEY (feed_version, route_id)
);

CREATE TABLE gtfs_stops (
    feed_version        integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    stop_id             text    NOT NULL,
    stop_code           text,
    stop_name           text,
    stop_desc           text,
    stop_lat            double precision,
    stop_lon            double precision,
    zone_id             text,
    stop_url            text,
    location_type       integer NOT NULL DEFAULT 0,
    parent_station      text,
    platform_code       text,
    wheelchair_boarding integer,
    PRIMARY KEY (feed_version, stop_id)
);
CREATE INDEX gtfs_stops_zone ON gtfs_stops (feed_version, zone_id);

CREATE TABLE gtfs_trips (
    feed_version          integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    trip_id               text    NOT NULL,
    route_id              text    NOT NULL,
    service_id            text    NOT NULL,
    trip_headsign         text,
    trip_short_name       text,
    direction_id          integer,
    block_id              text,
    shape_id              text,
    wheelchair_accessible integer,
    bikes_allowed         integer,
    PRIMARY KEY (feed_version, trip_id)
);

CREATE TABLE gtfs_stop_times (
    feed_version        integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    trip_id             text    NOT NULL,
    stop_sequence       integer NOT NULL,
    arrival_s           integer,
    departure_s         integer,
    stop_id             text    NOT NULL,
    stop_headsign       text,
    pickup_type         integer,
    drop_off_type       integer,
    shape_dist_traveled double precision,
    timepoint           integer,
    PRIMARY KEY (feed_version, trip_id, stop_sequence)
);
CREATE INDEX gtfs_stop_times_stop ON gtfs_stop_times (feed_version, stop_id);

CREATE TABLE gtfs_shapes (
    feed_version        integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    shape_id            text    NOT NULL,
    shape_pt_sequence   integer NOT NULL,
    shape_pt_lat        double precision NOT NULL,
    shape_pt_lon        double precision NOT NULL,
    shape_dist_traveled double precision,
    PRIMARY KEY (feed_version, shape_id, shape_pt_sequence)
);

CREATE TABLE gtfs_calendar (
    feed_version integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    service_id   text    NOT NULL,
    monday       boolean NOT NULL,
    tuesday      boolean NOT NULL,
    wednesday    boolean NOT NULL,
    thursday     boolean NOT NULL,
    friday       boolean NOT NULL,
    saturday     boolean NOT NULL,
    sunday       boolean NOT NULL,
    start_date   date    NOT NULL,
    end_date     date    NOT NULL,
    PRIMARY KEY (feed_version, service_id)
);

CREATE TABLE gtfs_calendar_dates (
    feed_version   integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    service_id     text    NOT NULL,
    date           date    NOT NULL,
    exception_type integer NOT NULL CHECK (exception_type IN (1, 2)),
    PRIMARY KEY (feed_version, service_id, date)
);

CREATE TABLE gtfs_fare_attributes (
    feed_version      integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    fare_id           text    NOT NULL,
    price             numeric NOT NULL,
    currency_type     text    NOT NULL,
    payment_method    integer NOT NULL,
    transfers         integer,
    agency_id         text,
    transfer_duration integer,
    PRIMARY KEY (feed_version, fare_id)
);

CREATE TABLE gtfs_fare_rules (
    feed_version   integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    fare_id        text    NOT NULL,
    route_id       text,
    origin_id      text,
    destination_id text,
    contains_id    text
);
CREATE INDEX gtfs_fare_rules_lookup ON gtfs_fare_rules (feed_version, origin_id, destination_id);

CREATE TABLE gtfs_frequencies (
    feed_version integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    trip_id      text    NOT NULL,
    start_s      integer NOT NULL,
    end_s        integer NOT NULL,
    headway_secs integer NOT NULL,
    exact_times  integer
);

CREATE TABLE gtfs_transfers (
    feed_version      integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    from_stop_id      text,
    to_stop_id        text,
    transfer_type     integer NOT NULL,
    min_transfer_time integer,
    from_route_id     text,
    to_route_id       text,
    from_trip_id      text,
    to_trip_id        text
);

-- Both layouts: GTFS (table_name, field_name, language, translation, record_id,
-- record_sub_id, field_value) and the older GTFS-JP v2 (trans_id, lang, translation).
CREATE TABLE gtfs_translations (
    feed_version  integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    table_name    text,
    field_name    text,
    language      text,
    translation   text NOT NULL,
    record_id     text,
    record_sub_id text,
    field_value   text,
    trans_id      text
);

CREATE TABLE gtfs_feed_info (
    feed_version        integer NOT NULL REFERENCES gtfs_feed_versions ON DELETE CASCADE,
    feed_publisher_name text NOT NULL,
    feed_publisher_url  text NOT NULL,
    feed_lang           text NOT NULL,
    feed_start_date     date,
    feed_end_date       date,
    feed_version_name   text,
    feed_contact_email  text,
    feed_contact_url    text
);

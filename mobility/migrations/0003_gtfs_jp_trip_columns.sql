-- GTFS-JP trip extensions, kept instead of dropped: trip description and its symbol,
-- operating office (office_jp.txt) and stopping pattern (pattern_jp.txt).
ALTER TABLE gtfs_trips
    ADD COLUMN jp_trip_desc        text,
    ADD COLUMN jp_trip_desc_symbol text,
    ADD COLUMN jp_office_id        text,
    ADD COLUMN jp_pattern_id       text;

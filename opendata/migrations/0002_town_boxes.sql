-- Placing pickups in towns: a point-in-polygon test against all 300 town rings per ride
-- took 0.8 ms a ride (bench/opendata_views_bench.py). Each ring's bounding box, indexed
-- (GiST box_ops), narrows the candidates to the one or two towns around the point first.

ALTER TABLE opendata_town_shapes ADD COLUMN bbox box GENERATED ALWAYS AS (box(shape)) STORED;
CREATE INDEX opendata_town_shapes_bbox ON opendata_town_shapes USING gist (bbox);

CREATE OR REPLACE VIEW opendata.mytaku_use AS
WITH lines AS (
    SELECT l.entry_id, l.resident_id, l.kind, l.amount_yen, l.ride_at, l.reverses,
           coalesce(orig.entry_id, l.entry_id) AS ride_entry,
           r.pickup_lon, r.pickup_lat
    FROM public.fare_ledger l
    LEFT JOIN public.fare_ledger orig ON orig.entry_id = l.reverses
    LEFT JOIN public.fare_taxi_rides r
        ON r.operator_id = l.operator_id AND r.record_id = l.record_id
    WHERE l.source = 'taxi' AND (l.kind = 'mytaku' OR orig.kind = 'mytaku')
), placed AS (
    SELECT x.*,
           coalesce((SELECT s.key_code FROM public.opendata_town_shapes s
                     WHERE s.bbox @> box(point(x.pickup_lon, x.pickup_lat),
                                         point(x.pickup_lon, x.pickup_lat))
                       AND s.shape @> point(x.pickup_lon, x.pickup_lat)
                     ORDER BY s.key_code LIMIT 1), '_outside') AS town_code,
           (SELECT f.value FROM public.fare_eligibility_facts f
            WHERE f.resident_id = x.resident_id AND f.kind = 'birth_date'
            ORDER BY f.fact_id DESC LIMIT 1) AS birth
    FROM lines x
), banded AS (
    SELECT p.*,
           date_trunc('month', p.ride_at AT TIME ZONE 'Asia/Tokyo')::date AS month,
           opendata.age_band(CASE WHEN p.birth ~ '^\d{4}-\d{2}-\d{2}$' THEN
               extract(year FROM age((p.ride_at AT TIME ZONE 'Asia/Tokyo')::date,
                                     p.birth::date))::int END) AS age_band,
           EXISTS (SELECT 1 FROM public.fare_ledger rv WHERE rv.reverses = p.ride_entry)
               AS reversed
    FROM placed p
), home AS (
    -- Each resident counts once a month, in the cell (town, age band) of most of their
    -- rides: resident counts add up along rows and columns (what suppression relies on).
    SELECT DISTINCT ON (resident_id, month) resident_id, month, town_code, age_band
    FROM banded WHERE kind = 'mytaku' AND NOT reversed
    GROUP BY resident_id, month, town_code, age_band
    ORDER BY resident_id, month, count(*) DESC, town_code, age_band
), users AS (
    SELECT month, town_code, age_band, count(*) AS residents FROM home GROUP BY 1, 2, 3
), agg AS (
    SELECT month, town_code, age_band,
           count(*) FILTER (WHERE kind = 'mytaku' AND NOT reversed) AS rides,
           sum(amount_yen)::bigint AS subsidy_yen
    FROM banded GROUP BY 1, 2, 3
)
SELECT a.month, a.town_code, a.age_band, a.rides, a.subsidy_yen,
       coalesce(u.residents, 0) AS residents
FROM agg a LEFT JOIN users u USING (month, town_code, age_band);

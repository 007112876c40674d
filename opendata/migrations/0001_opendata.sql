-- Open data and EBPM (issue 16): reference tables, release history and the `opendata`
-- schema of aggregate views.
--
-- The export (`mebuku opendata publish`) logs in as mebuku_opendata, which may read ONLY
-- the views of the `opendata` schema and its own release history (core/roles/grants.toml).
-- The views run with their owner's rights, so the role needs no right on any domain
-- table; what they leave out is the point: no resident, card, record or vehicle-level row
-- leaves them, only counts and sums per group. Small counts still appear here: the export
-- suppresses them (opendata/privacy.py) before anything is written.

-- Town blocks (町丁) with their population, from towns.geojson (`mebuku opendata towns`).
CREATE TABLE opendata_towns (
    key_code    text PRIMARY KEY,
    name        text NOT NULL,
    population  integer NOT NULL CHECK (population >= 0),
    households  integer NOT NULL CHECK (households >= 0),
    geometry    jsonb NOT NULL
);

-- One row per outer ring of each town (holes ignored): point-in-polygon without PostGIS.
CREATE TABLE opendata_town_shapes (
    key_code  text NOT NULL REFERENCES opendata_towns ON DELETE CASCADE,
    part      integer NOT NULL,
    shape     polygon NOT NULL,
    PRIMARY KEY (key_code, part)
);
CREATE INDEX opendata_town_shapes_shape ON opendata_town_shapes USING gist (shape);

-- The MyTaku budget per fiscal year (yen), entered by city staff (`mebuku opendata budget`).
CREATE TABLE opendata_budgets (
    fiscal_year  integer NOT NULL CHECK (fiscal_year BETWEEN 2000 AND 2100),
    program      text    NOT NULL CHECK (program IN ('mytaku', 'bus_discount')),
    budget_yen   bigint  NOT NULL CHECK (budget_yen >= 0),
    note         text    NOT NULL DEFAULT '',
    PRIMARY KEY (fiscal_year, program)
);

-- Releases and what each published (the suppression memory across releases: a cell
-- suppressed once stays suppressed; a published value is kept to refuse small differences).
CREATE TABLE opendata_releases (
    release_id    text PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    k             integer NOT NULL CHECK (k >= 2),
    epsilon       double precision NOT NULL DEFAULT 0 CHECK (epsilon >= 0),
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE opendata_release_cells (
    release_id  text NOT NULL REFERENCES opendata_releases,
    dataset     text NOT NULL,
    cell_key    text NOT NULL,
    value       double precision,          -- the published value; NULL when suppressed
    suppressed  boolean NOT NULL,
    PRIMARY KEY (dataset, cell_key, release_id)
);

CREATE SCHEMA IF NOT EXISTS opendata;
REVOKE ALL ON SCHEMA opendata FROM PUBLIC;

-- Hour bands of the ridership tables (Asia/Tokyo hours).
CREATE FUNCTION opendata.hour_band(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN h < 7 THEN 'early'
        WHEN h < 9 THEN 'am_peak'
        WHEN h < 16 THEN 'midday'
        WHEN h < 19 THEN 'pm_peak'
        ELSE 'evening' END
    FROM (SELECT extract(hour FROM ts AT TIME ZONE 'Asia/Tokyo')::int AS h) x
$$;

-- Age bands of the MyTaku tables (completed years at the ride).
CREATE FUNCTION opendata.age_band(age integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN age IS NULL THEN 'unknown'
        WHEN age < 65 THEN 'under65'
        WHEN age < 75 THEN '65to74'
        WHEN age < 85 THEN '75to84'
        ELSE '85plus' END
$$;

-- The current GTFS feed's route and stop names.
CREATE VIEW opendata.routes AS
SELECT r.route_id, coalesce(nullif(r.route_long_name, ''), r.route_short_name, r.route_id)
           AS route_name
FROM public.gtfs_routes r
WHERE r.feed_version = (SELECT id FROM public.gtfs_feed_versions WHERE is_current);

CREATE VIEW opendata.stops AS
SELECT s.stop_id, s.stop_name, s.stop_lat, s.stop_lon
FROM public.gtfs_stops s
WHERE s.feed_version = (SELECT id FROM public.gtfs_feed_versions WHERE is_current);

-- Towns with population (published as they are: public census-style data).
CREATE VIEW opendata.towns AS
SELECT key_code, name, population, households, geometry FROM public.opendata_towns;

-- Bus ridership from IC-card taps: boardings by service day, route, boarding stop and
-- hour band of the tap-on.
CREATE VIEW opendata.bus_boardings_stop AS
SELECT (t.tap_on_at AT TIME ZONE 'Asia/Tokyo')::date AS service_day,
       t.route_id, t.origin_stop_id AS stop_id, opendata.hour_band(t.tap_on_at) AS hour_band,
       count(*) AS ic_boardings
FROM public.fare_bus_taps t
GROUP BY 1, 2, 3, 4;

-- Boardings counted on the bus (automatic passenger counters in telemetry: the rise of
-- `passengers` between consecutive fixes of a trip), by service day, route and hour band.
CREATE VIEW opendata.bus_boardings_route AS
WITH fixes AS (
    SELECT route_id, ts,
           passengers - lag(passengers) OVER (PARTITION BY vehicle_id, trip_id ORDER BY ts)
               AS delta
    FROM public.bus_telemetry
    WHERE passengers IS NOT NULL AND trip_id IS NOT NULL AND route_id IS NOT NULL
), counted AS (
    SELECT (ts AT TIME ZONE 'Asia/Tokyo')::date AS service_day, route_id,
           opendata.hour_band(ts) AS hour_band, sum(greatest(delta, 0))::bigint AS boardings
    FROM fixes WHERE delta IS NOT NULL
    GROUP BY 1, 2, 3
), taps AS (
    SELECT service_day, route_id, hour_band, sum(ic_boardings)::bigint AS ic_boardings
    FROM opendata.bus_boardings_stop GROUP BY 1, 2, 3
)
SELECT service_day, route_id, hour_band, coalesce(t.ic_boardings, 0) AS ic_boardings,
       c.boardings AS counted_boardings
FROM taps t FULL JOIN counted c USING (service_day, route_id, hour_band);

-- On-time performance (-1/+5 min at departures) and headway regularity by route and day.
CREATE VIEW opendata.route_punctuality AS
WITH dep AS (
    SELECT route_id, direction_id, stop_id, ts, scheduled_ts, delay_s,
           (ts AT TIME ZONE 'Asia/Tokyo')::date AS service_day
    FROM public.vehicle_events
    WHERE type = 'departure' AND route_id IS NOT NULL
), hw AS (
    SELECT service_day, route_id,
           extract(epoch FROM ts - lag(ts) OVER w) AS headway_s,
           extract(epoch FROM scheduled_ts - lag(scheduled_ts) OVER w) AS sched_headway_s
    FROM dep
    WINDOW w AS (PARTITION BY service_day, route_id, direction_id, stop_id ORDER BY ts)
), hw_route AS (
    SELECT service_day, route_id,
           stddev_pop(headway_s) / nullif(avg(headway_s), 0) AS headway_cv,
           avg(abs(headway_s - sched_headway_s) / sched_headway_s)
               FILTER (WHERE sched_headway_s > 0) AS headway_deviation
    FROM hw WHERE headway_s IS NOT NULL GROUP BY 1, 2
)
SELECT d.service_day, d.route_id, count(*) AS departures,
       count(*) FILTER (WHERE delay_s >= -60 AND delay_s <= 300) AS on_time,
       (count(*) FILTER (WHERE delay_s >= -60 AND delay_s <= 300))::float8
           / nullif(count(*) FILTER (WHERE delay_s IS NOT NULL), 0) AS on_time_share,
       avg(delay_s) AS mean_delay_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY delay_s) AS p90_delay_s,
       h.headway_cv, h.headway_deviation
FROM dep d LEFT JOIN hw_route h USING (service_day, route_id)
GROUP BY d.service_day, d.route_id, h.headway_cv, h.headway_deviation;

-- The same by Asia/Tokyo hour of day (which routes lose punctuality at which hours).
CREATE VIEW opendata.route_punctuality_hourly AS
SELECT (ts AT TIME ZONE 'Asia/Tokyo')::date AS service_day, route_id,
       extract(hour FROM ts AT TIME ZONE 'Asia/Tokyo')::int AS hour,
       count(*) AS departures,
       count(*) FILTER (WHERE delay_s >= -60 AND delay_s <= 300) AS on_time,
       avg(delay_s) AS mean_delay_s
FROM public.vehicle_events
WHERE type = 'departure' AND route_id IS NOT NULL
GROUP BY 1, 2, 3;

-- MyTaku use by month, pickup town (町丁) and age band at the ride: rides, subsidy yen
-- (reversals included) and distinct residents. Rides outside every town: key '_outside'.
CREATE VIEW opendata.mytaku_use AS
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
                     WHERE s.shape @> point(x.pickup_lon, x.pickup_lat)
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

-- Residents enrolled for the fare programmes (a card linked), by age band today.
CREATE VIEW opendata.mytaku_enrolment AS
WITH r AS (
    SELECT res.resident_id,
           (SELECT f.value FROM public.fare_eligibility_facts f
            WHERE f.resident_id = res.resident_id AND f.kind = 'birth_date'
            ORDER BY f.fact_id DESC LIMIT 1) AS birth
    FROM public.fare_residents res
    WHERE EXISTS (SELECT 1 FROM public.fare_ic_cards c
                  WHERE c.resident_id = res.resident_id AND c.status = 'active')
)
SELECT opendata.age_band(CASE WHEN birth ~ '^\d{4}-\d{2}-\d{2}$' THEN
           extract(year FROM age((now() AT TIME ZONE 'Asia/Tokyo')::date, birth::date))::int
       END) AS age_band,
       count(*) AS enrolled
FROM r GROUP BY 1;

-- Subsidy spending per fiscal year (April-March) against the budget.
CREATE VIEW opendata.subsidy_budget AS
WITH spent AS (
    SELECT fiscal_year,
           CASE WHEN l.source = 'taxi' THEN 'mytaku' ELSE 'bus_discount' END AS program,
           sum(amount_yen)::bigint AS spent_yen
    FROM public.fare_ledger l GROUP BY 1, 2
)
SELECT coalesce(s.fiscal_year, b.fiscal_year) AS fiscal_year,
       coalesce(s.program, b.program) AS program,
       coalesce(s.spent_yen, 0) AS spent_yen, b.budget_yen
FROM spent s FULL JOIN public.opendata_budgets b USING (fiscal_year, program);

-- Autonomous bus operation per month (Asia/Tokyo): distance, autonomous share.
CREATE VIEW opendata.autonomy_monthly AS
WITH t AS (
    SELECT ts, mode,
           lag(ts) OVER w AS pts, lag(mode) OVER w AS pmode, lag(odometer_m) OVER w AS podo,
           odometer_m
    FROM public.bus_telemetry
    WINDOW w AS (PARTITION BY vehicle_id ORDER BY ts)
), steps AS (
    SELECT date_trunc('month', ts AT TIME ZONE 'Asia/Tokyo')::date AS month, pmode AS mode,
           greatest(odometer_m - podo, 0) AS dd
    FROM t
    WHERE pts IS NOT NULL AND extract(epoch FROM ts - pts) <= 60 AND odometer_m IS NOT NULL
      AND podo IS NOT NULL
), km AS (
    SELECT month, sum(dd) / 1000.0 AS km,
           coalesce(sum(dd) FILTER (WHERE mode = 'autonomous'), 0) / 1000.0 AS autonomous_km
    FROM steps GROUP BY 1
), ev AS (
    SELECT date_trunc('month', ts AT TIME ZONE 'Asia/Tokyo')::date AS month,
           count(*) AS takeovers
    FROM public.bus_events WHERE type = 'takeover' GROUP BY 1
)
SELECT month, coalesce(km.km, 0) AS km, coalesce(km.autonomous_km, 0) AS autonomous_km,
       km.autonomous_km / nullif(km.km, 0) AS autonomous_share,
       coalesce(ev.takeovers, 0) AS takeovers,
       coalesce(ev.takeovers, 0) / nullif(km.km / 100.0, 0) AS takeovers_per_100km
FROM km FULL JOIN ev USING (month);

-- Takeovers per month and cause, per 100 km driven that month.
CREATE VIEW opendata.autonomy_takeovers AS
SELECT date_trunc('month', e.ts AT TIME ZONE 'Asia/Tokyo')::date AS month,
       coalesce(e.cause, 'unknown') AS cause, count(*) AS takeovers,
       count(*) / nullif(max(m.km) / 100.0, 0) AS per_100km
FROM public.bus_events e
LEFT JOIN opendata.autonomy_monthly m
    ON m.month = date_trunc('month', e.ts AT TIME ZONE 'Asia/Tokyo')::date
WHERE e.type = 'takeover'
GROUP BY 1, 2;

-- Local-5G trials: every target with the value measured over the trial's devices and period.
CREATE VIEW opendata.fiveg_trial_kpis AS
WITH s AS (
    SELECT t.trial_id, r.dl_mbps, r.ul_mbps, r.rtt_ms, r.jitter_ms, r.loss_pct,
           t.latency_bound_ms
    FROM public.fiveg_trials t
    JOIN public.fiveg_trial_devices d ON d.trial_id = t.trial_id
    JOIN public.fiveg_radio r ON r.device_id = d.device_id
        AND r.ts >= t.period_start AND r.ts < t.period_end
), m AS (
    SELECT trial_id, count(*) AS samples,
           avg(dl_mbps) AS dl_mbps_mean, avg(ul_mbps) AS ul_mbps_mean,
           avg(rtt_ms) AS rtt_ms_mean, avg(jitter_ms) AS jitter_ms_mean,
           avg(loss_pct) AS loss_pct_mean,
           percentile_cont(ARRAY[0.05, 0.5, 0.95]) WITHIN GROUP (ORDER BY dl_mbps) AS dl_p,
           percentile_cont(ARRAY[0.05, 0.5, 0.95]) WITHIN GROUP (ORDER BY ul_mbps) AS ul_p,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY rtt_ms) AS rtt_p,
           100.0 * count(*) FILTER (WHERE rtt_ms <= latency_bound_ms)
               / nullif(count(rtt_ms), 0) AS reliability_pct
    FROM s GROUP BY trial_id
), v AS (
    SELECT g.trial_id, g.kpi, g.op, g.value AS target, g.unit, g.label, g.reference,
           coalesce(m.samples, 0) AS samples,
           CASE g.kpi
               WHEN 'dl_mbps_mean' THEN m.dl_mbps_mean WHEN 'ul_mbps_mean' THEN m.ul_mbps_mean
               WHEN 'rtt_ms_mean' THEN m.rtt_ms_mean WHEN 'jitter_ms_mean' THEN m.jitter_ms_mean
               WHEN 'loss_pct_mean' THEN m.loss_pct_mean
               WHEN 'dl_mbps_p5' THEN m.dl_p[1] WHEN 'dl_mbps_p50' THEN m.dl_p[2]
               WHEN 'dl_mbps_p95' THEN m.dl_p[3]
               WHEN 'ul_mbps_p5' THEN m.ul_p[1] WHEN 'ul_mbps_p50' THEN m.ul_p[2]
               WHEN 'ul_mbps_p95' THEN m.ul_p[3]
               WHEN 'rtt_ms_p50' THEN m.rtt_p[1] WHEN 'rtt_ms_p95' THEN m.rtt_p[2]
               WHEN 'rtt_ms_p99' THEN m.rtt_p[3]
               WHEN 'reliability_pct' THEN m.reliability_pct
           END AS measured
    FROM public.fiveg_trial_targets g LEFT JOIN m USING (trial_id)
)
SELECT v.trial_id, t.title, t.theme, t.period_start, t.period_end, v.kpi, v.label, v.unit,
       v.op, v.target, v.measured, v.samples, v.reference,
       CASE WHEN v.measured IS NULL THEN NULL
            WHEN v.op = '>=' THEN v.measured >= v.target
            ELSE v.measured <= v.target END AS met
FROM v JOIN public.fiveg_trials t USING (trial_id);

-- 5G coverage in ~50 m cells (the dashboards' grid: 0.00045 deg lat x 0.00056 deg lon)
-- per trial: samples, devices, median RSRP and throughputs.
CREATE VIEW opendata.fiveg_coverage_cells AS
SELECT d.trial_id,
       floor(r.lat / 0.00045)::bigint AS cell_row, floor(r.lon / 0.00056)::bigint AS cell_col,
       count(*) AS samples, count(DISTINCT r.device_id) AS devices,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.rsrp_dbm) AS rsrp_dbm_median,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.dl_mbps) AS dl_mbps_median,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ul_mbps) AS ul_mbps_median
FROM public.fiveg_radio r
JOIN public.fiveg_trial_devices d ON d.device_id = r.device_id
JOIN public.fiveg_trials t ON t.trial_id = d.trial_id
    AND r.ts >= t.period_start AND r.ts < t.period_end
WHERE r.lat IS NOT NULL AND r.lon IS NOT NULL
GROUP BY 1, 2, 3;

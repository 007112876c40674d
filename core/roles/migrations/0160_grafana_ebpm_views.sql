-- The city's EBPM dashboard (issue 16) reads the open-data aggregates through these views
-- (the grafana role reads grafana.* only). Resident counts come from opendata.mytaku_use;
-- a town-month with fewer than 10 residents is folded into one "other towns" row
-- (town_code '_other'), so the staff dashboard shows no small group either.

CREATE VIEW grafana.ebpm_mytaku_town AS
WITH t AS (
    SELECT u.month, u.town_code, sum(u.residents) AS residents, sum(u.rides) AS rides,
           sum(u.subsidy_yen) AS subsidy_yen
    FROM opendata.mytaku_use u GROUP BY 1, 2
)
SELECT t.month::timestamp AT TIME ZONE 'Asia/Tokyo' AS month,
       CASE WHEN t.residents >= 10 THEN t.town_code ELSE '_other' END AS town_code,
       CASE WHEN t.residents >= 10 THEN w.name END AS town_name,
       sum(t.residents)::bigint AS residents, sum(t.rides)::bigint AS rides,
       sum(t.subsidy_yen)::bigint AS subsidy_yen,
       CASE WHEN t.residents >= 10 THEN max(w.population) END AS population
FROM t LEFT JOIN opendata.towns w ON w.key_code = t.town_code
GROUP BY 1, 2, 3, t.residents >= 10;

-- Residents using MyTaku by age band and month, with the residents enrolled (card linked).
CREATE VIEW grafana.ebpm_mytaku_age AS
SELECT u.month::timestamp AT TIME ZONE 'Asia/Tokyo' AS month, u.age_band,
       sum(u.residents)::bigint AS residents, sum(u.rides)::bigint AS rides,
       max(e.enrolled) AS enrolled
FROM opendata.mytaku_use u
LEFT JOIN opendata.mytaku_enrolment e USING (age_band)
GROUP BY 1, 2;

-- Subsidy spending against the budget per fiscal year and programme.
CREATE VIEW grafana.ebpm_subsidy_budget AS
SELECT fiscal_year, program, spent_yen, budget_yen FROM opendata.subsidy_budget;

-- MyTaku subsidy per month (for the spending curve within the fiscal year).
CREATE VIEW grafana.ebpm_subsidy_monthly AS
SELECT month::timestamp AT TIME ZONE 'Asia/Tokyo' AS month,
       (extract(year FROM month)::int - CASE WHEN extract(month FROM month) < 4 THEN 1 ELSE 0 END)
           AS fiscal_year,
       sum(subsidy_yen)::bigint AS subsidy_yen
FROM opendata.mytaku_use GROUP BY 1, 2;

-- Punctuality by route, day and hour of day (which routes lose punctuality when).
CREATE VIEW grafana.ebpm_punctuality_hourly AS
SELECT p.service_day::timestamp AT TIME ZONE 'Asia/Tokyo' AS day, p.route_id,
       coalesce(r.route_name, p.route_id) AS route_name, p.hour, p.departures, p.on_time,
       p.mean_delay_s
FROM opendata.route_punctuality_hourly p
LEFT JOIN opendata.routes r USING (route_id);

-- Local-5G targets against measurements, and the coverage cells (cell centres).
CREATE VIEW grafana.ebpm_fiveg_targets AS
SELECT trial_id, title, theme, kpi, label, unit, op, target, measured, samples, met, reference
FROM opendata.fiveg_trial_kpis;

CREATE VIEW grafana.ebpm_fiveg_cells AS
SELECT trial_id, (cell_row + 0.5) * 0.00045 AS lat, (cell_col + 0.5) * 0.00056 AS lon,
       samples, devices, rsrp_dbm_median, dl_mbps_median, ul_mbps_median
FROM opendata.fiveg_coverage_cells
WHERE samples >= 10;

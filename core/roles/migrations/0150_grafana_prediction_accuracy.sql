-- Arrival prediction accuracy for the operators' dashboard (issue 15): scored samples per
-- hour, route and MBTA bin (0-3 min ahead: 1 min early to 1 late; 3-6: 1.5 early to 2
-- late; 6-12: 2.5 early to 3.5 late; 12-30: 4 early to 6 late). No personal data.

CREATE VIEW grafana.mobility_prediction_accuracy AS
SELECT date_trunc('hour', s.issued_at) AS time, s.route_id, b.bin, b.ord,
       count(*)::integer AS predictions,
       count(*) FILTER (WHERE s.error_s BETWEEN b.early AND b.late)::integer AS accurate,
       avg(abs(s.error_s)) AS mae_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY abs(s.error_s)) AS p90_s
FROM public.mobility_prediction_samples s
JOIN (VALUES ('0-3', 1, 0, 180, -60, 60), ('3-6', 2, 180, 360, -90, 120),
             ('6-12', 3, 360, 720, -150, 210), ('12-30', 4, 720, 1800, -240, 360))
     AS b(bin, ord, lo, hi, early, late)
  ON s.horizon_s >= b.lo AND s.horizon_s < b.hi
WHERE s.error_s IS NOT NULL
GROUP BY 1, 2, 3, 4;

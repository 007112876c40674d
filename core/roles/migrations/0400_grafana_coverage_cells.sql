-- Issue 14, item 2: the council's coverage map draws exactly the 50 m cells of the API and
-- the report (fiveg/coverage.py): cells of JGD2011 / Japan Plane Rectangular CS IX
-- (EPSG:6677: transverse Mercator, GRS80, origin 36 N 139 50 E, scale 0.9999), column
-- floor(easting / 50), row floor(northing / 50).
--
-- No PostGIS here, so the projection is Krueger's series to sixth order in n (Karney 2011,
-- "Transverse Mercator with an accuracy of a few nanometers"), the same mathematics as
-- PROJ's tmerc that pyproj runs for fiveg.coverage: within a few nanometres around
-- Maebashi, so a sample lands in the same cell unless it lies nanometres from an edge.
-- tests/grafana/test_coverage_cells.py compares the panel's cells with fiveg.coverage on
-- seeded data. Coefficients were computed from GRS80 (f = 1/298.257222101) with 40-digit
-- arithmetic; k0*A and the northing of the origin are folded in. PL/pgSQL, not SQL: a SQL
-- function with sub-selects is planned per call (about 0.4 ms a row), PL/pgSQL runs the
-- same arithmetic in about 7 us (bench/coverage_cells_bench.py).

-- (lat, lon) in degrees -> ARRAY[easting, northing] in metres (EPSG:6677).
CREATE FUNCTION grafana.jgd2011_ix_xy(lat double precision, lon double precision)
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    t double precision := sinh(atanh(sin(radians(lat)))
        - 0.081819191042815790146 * atanh(0.081819191042815790146 * sin(radians(lat))));
    dl double precision := radians(lon) - radians(139 + 50 / 60.0);
    xi double precision := atan(t / cos(dl));
    eta double precision := atanh(sin(dl) / sqrt(1 + t * t));
BEGIN
    RETURN ARRAY[
        6366812.4008564704221 * (eta + 0.00083773182472855133313 * cos(2 * xi) * sinh(2 * eta)
        + 7.6085278481494744745e-7 * cos(4 * xi) * sinh(4 * eta)
        + 1.1976455209422673446e-9 * cos(6 * xi) * sinh(6 * eta)
        + 2.4291706548410129254e-12 * cos(8 * xi) * sinh(8 * eta)
        + 5.711757817902033138e-15 * cos(10 * xi) * sinh(10 * eta)
        + 1.4911177751870800004e-17 * cos(12 * xi) * sinh(12 * eta)),
        6366812.4008564704221 * (xi + 0.00083773182472855133313 * sin(2 * xi) * cosh(2 * eta)
        + 7.6085278481494744745e-7 * sin(4 * xi) * cosh(4 * eta)
        + 1.1976455209422673446e-9 * sin(6 * xi) * cosh(6 * eta)
        + 2.4291706548410129254e-12 * sin(8 * xi) * cosh(8 * eta)
        + 5.711757817902033138e-15 * sin(10 * xi) * cosh(10 * eta)
        + 1.4911177751870800004e-17 * sin(12 * xi) * cosh(12 * eta)) - 3985144.1160292220759
    ];
END
$$;

-- ARRAY[easting, northing] in metres (EPSG:6677) -> ARRAY[lat, lon] in degrees.
CREATE FUNCTION grafana.jgd2011_ix_latlon(x double precision, y double precision)
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    xi double precision := (y + 3985144.1160292220759) / 6366812.4008564704221;
    eta double precision := x / 6366812.4008564704221;
    xip double precision;
    etap double precision;
    chi double precision;
BEGIN
    xip := xi - 0.00083773216816203524197 * sin(2 * xi) * cosh(2 * eta)
            - 5.9058702103689597897e-8 * sin(4 * xi) * cosh(4 * eta)
            - 1.6734826899173421378e-10 * sin(6 * xi) * cosh(6 * eta)
            - 2.1647980825651297467e-13 * sin(8 * xi) * cosh(8 * eta)
            - 3.7879781391342142698e-16 * sin(10 * xi) * cosh(10 * eta)
            - 7.2487491042440579113e-19 * sin(12 * xi) * cosh(12 * eta);
    etap := eta - 0.00083773216816203524197 * cos(2 * xi) * sinh(2 * eta)
            - 5.9058702103689597897e-8 * cos(4 * xi) * sinh(4 * eta)
            - 1.6734826899173421378e-10 * cos(6 * xi) * sinh(6 * eta)
            - 2.1647980825651297467e-13 * cos(8 * xi) * sinh(8 * eta)
            - 3.7879781391342142698e-16 * cos(10 * xi) * sinh(10 * eta)
            - 7.2487491042440579113e-19 * cos(12 * xi) * sinh(12 * eta);
    chi := asin(sin(xip) / cosh(etap));
    RETURN ARRAY[
        degrees(chi + 0.0033565514856043126322 * sin(2 * chi)
        + 6.5718732631271786753e-6 * sin(4 * chi)
        + 1.7646404372866212711e-8 * sin(6 * chi)
        + 5.3877538900094721782e-11 * sin(8 * chi)
        + 1.7640075159133889597e-13 * sin(10 * chi)
        + 6.0560740552075851664e-16 * sin(12 * chi)),
        degrees(radians(139 + 50 / 60.0) + atan2(sinh(etap), cos(xip)))
    ];
END
$$;

-- One row per 5G sample with a position: its 50 m cell (column cx, row cy; `cell` is the
-- API's feature id "cx_cy") and the radio values the map shows. No position finer than
-- the cell leaves the view (phones take part in trials). The centre of a cell in lat/lon
-- is grafana.fiveg_cell_centre(cx, cy).
CREATE VIEW grafana.fiveg_radio_cells AS
SELECT r.site_id, r.device_id, r.ts, r.rsrp_dbm, r.dl_mbps, r.ul_mbps,
       floor(c.xy[1] / 50)::bigint AS cx, floor(c.xy[2] / 50)::bigint AS cy
FROM public.fiveg_radio r
CROSS JOIN LATERAL (SELECT grafana.jgd2011_ix_xy(r.lat, r.lon) AS xy) c
WHERE r.lat IS NOT NULL AND r.lon IS NOT NULL;

-- The centre of cell (cx, cy) as ARRAY[lat, lon] (what the geomap panel draws).
CREATE FUNCTION grafana.fiveg_cell_centre(cx bigint, cy bigint)
RETURNS double precision[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT grafana.jgd2011_ix_latlon((cx + 0.5) * 50.0, (cy + 0.5) * 50.0) $$;

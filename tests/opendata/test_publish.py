"""Issue 16, item 3: `mebuku opendata publish` writes a release that validates (CSV and
GeoJSON against their data dictionaries, the catalogue as DCAT), pushes it to a CKAN
Action API stand-in, and keeps small cells hidden across three consecutive releases."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from rdflib import Graph, Literal
from rdflib.namespace import DCAT, DCTERMS, RDF

from opendata import catalogue, formats
from opendata.datasets import BY_ID, DATASETS
from opendata.export import ExportError
from opendata.privacy import TOTAL
from opendata.release import ReleaseOptions, latest, publish
from tests.support.attacker import attack
from tests.support.ckan_standin import CkanStandIn
from tests.support.opendata_city import CityPlan, add_rides, seed_city

START = datetime(2026, 5, 10, tzinfo=UTC)
PLAN = CityPlan(start=START, days=3, rides=150, residents=45)
KEY = "ckan-test-key-0123456789"


def mebuku(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def releases(db_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Three consecutive releases, more (late) rides arriving before each of the later two."""
    out = tmp_path_factory.mktemp("open")
    seed_city(db_url, PLAN)
    runs = []
    with CkanStandIn(KEY) as ckan:
        env = {
            "MEBUKU_DATABASE_URL": db_url,
            "MEBUKU_CKAN_URL": ckan.url,
            "MEBUKU_CKAN_API_KEY": KEY,
            "MEBUKU_LANG": "ja",
        }
        for i in range(3):
            if i:
                import random

                with psycopg.connect(db_url) as conn:
                    rids = [r[0] for r in conn.execute("SELECT resident_id FROM fare_residents")]
                    late = CityPlan(start=START, days=3, rides=25 + 10 * i, seed=100 + i)
                    add_rides(conn, rids, late, random.Random(i), tag=f"late{i}")
            res = mebuku("opendata", "publish", "--out", str(out), env=env)
            assert res.returncode == 0, res.stderr
            runs.append(latest(out))
        calls = list(ckan.portal.calls)
        packages = dict(ckan.portal.packages)
    return out, runs, calls, packages


def _csv(folder: Path, ds: str) -> list[dict[str, str]]:
    text = (folder / f"{ds}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_three_releases_are_written_and_latest_points_at_the_last(releases) -> None:
    out, runs, _, _ = releases
    assert len(set(runs)) == 3 and runs == sorted(runs)
    assert latest(out) == runs[-1]
    assert sorted(p.name for p in (out / "releases").iterdir()) == runs


def test_every_file_validates_against_its_data_dictionary(releases) -> None:
    out, runs, _, _ = releases
    folder = out / "releases" / runs[-1]
    for ds in DATASETS:
        if ds.fmt == "zip":
            assert (folder / ds.filename).stat().st_size > 100_000
            continue
        schema = json.loads((folder / f"{ds.id}.schema.json").read_text(encoding="utf-8"))
        assert [f["alias"] for f in schema["fields"]] == [c.name for c in ds.columns]
        if ds.fmt == "csv":
            raw = (folder / ds.filename).read_bytes()
            text = raw.decode("utf-8")  # UTF-8, one header row
            assert formats.validate_csv(text, schema) == [], ds.id
            assert len(text.splitlines()) > 1, ds.id
        else:
            doc = json.loads((folder / ds.filename).read_text(encoding="utf-8"))
            assert formats.validate_geojson(doc, schema) == [], ds.id
            assert doc["features"], ds.id
    header = (folder / "mytaku_use.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("年月,町丁コード,町丁名,年齢区分コード,年齢区分,")
    towns = json.loads((folder / "towns.geojson").read_text(encoding="utf-8"))
    assert len(towns["features"]) == 275
    assert sum(f["properties"]["人口"] for f in towns["features"]) == 321_390


def test_the_catalogue_parses_back_as_dcat_with_the_required_properties(releases) -> None:
    out, runs, _, _ = releases
    text = (out / "releases" / runs[-1] / "catalog.jsonld").read_text(encoding="utf-8")
    assert catalogue.validate(text) == []
    g = Graph().parse(data=text, format="json-ld")
    datasets = set(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == len(DATASETS) + 2  # and the two GTFS-RT feeds
    mytaku = next(d for d in datasets if str(g.value(d, DCTERMS.identifier)) == "mytaku_use")
    titles = {
        t.language: str(t) for t in g.objects(mytaku, DCTERMS.title) if isinstance(t, Literal)
    }
    assert titles["ja"] == "マイタク利用状況（町丁・年齢区分別）"
    assert str(g.value(mytaku, DCTERMS.license)) == "https://creativecommons.org/licenses/by/4.0/"
    temporal = g.value(mytaku, DCTERMS.temporal)
    assert str(g.value(temporal, DCAT.startDate)) <= "2026-05-10"
    assert g.value(g.value(mytaku, DCTERMS.spatial), DCAT.bbox) is not None
    dist = g.value(mytaku, DCAT.distribution)
    assert str(g.value(dist, DCAT.downloadURL)).endswith(f"/releases/{runs[-1]}/mytaku_use.csv")
    assert str(g.value(dist, DCTERMS.conformsTo)).endswith("mytaku_use.schema.json")
    publisher = g.value(mytaku, DCTERMS.publisher)
    names = {n.language: str(n) for n in g.objects(publisher, None) if hasattr(n, "language")}
    assert names.get("ja") == "前橋市"


def test_a_broken_catalogue_fails_validation() -> None:
    assert catalogue.validate("{}") != []
    assert catalogue.validate("not json") != []


def test_the_ckan_stand_in_received_valid_payloads(releases) -> None:
    _, runs, calls, packages = releases
    failed = [c for c in calls if c[0] not in ("package_show",) and "error" in c[1]]
    assert failed == []
    creates = [d for a, d in calls if a == "package_create"]
    assert len(creates) == len(DATASETS)  # the first release creates, later ones patch
    assert len([a for a, _ in calls if a == "package_patch"]) == 2 * len(DATASETS)
    pkg = packages["maebashi-mytaku-use"]
    assert pkg["license_id"] == "cc-by" and pkg["owner_org"] == "maebashi-city"
    assert pkg["version"] == runs[-1]
    urls = [r["url"] for r in pkg["resources"]]
    assert any(u.endswith(f"/releases/{runs[0]}/mytaku_use.csv") for u in urls)
    assert any(u.endswith(f"/releases/{runs[-1]}/mytaku_use.schema.json") for u in urls)


def test_the_ckan_stand_in_rejects_what_ckan_rejects() -> None:
    import ckanapi

    with CkanStandIn(KEY) as ckan:
        portal = ckanapi.RemoteCKAN(ckan.url, apikey=KEY)
        with pytest.raises(ckanapi.ValidationError):
            portal.action.package_create(name="Bad Name!", owner_org="maebashi-city")
        with pytest.raises(ckanapi.ValidationError):
            portal.action.package_create(name="ok-name", owner_org="nobody")
        with pytest.raises(ckanapi.ValidationError):
            portal.action.resource_create(package_id="missing", url="http://x/y.csv")
        with pytest.raises(ckanapi.NotAuthorized):
            ckanapi.RemoteCKAN(ckan.url, apikey="wrong").action.package_show(id="x")


def _mytaku_tables(folder: Path) -> dict[str, dict[tuple[str, str], int | None]]:
    tables: dict[str, dict[tuple[str, str], int | None]] = {}
    for r in _csv(folder, "mytaku_use"):
        town = TOTAL if r["町丁コード"] == "_total" else r["町丁コード"]
        band = TOTAL if r["年齢区分コード"] == "_total" else r["年齢区分コード"]
        v = r["利用者数"]
        tables.setdefault(r["年月"], {})[(town, band)] = int(v) if v else None
    return tables


def test_no_cell_below_k_can_be_recovered_from_the_published_files(releases, db_url) -> None:
    out, runs, _, _ = releases
    pubs = [_mytaku_tables(out / "releases" / rid) for rid in runs]
    population = {}
    for f in json.loads((out / "releases" / runs[-1] / "towns.geojson").read_text())["features"]:
        population[f["properties"]["町丁コード"]] = f["properties"]["人口"]
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT to_char(month, 'YYYY-MM-DD'), town_code, age_band, residents"
            " FROM opendata.mytaku_use"
        ).fetchall()
    truth_now: dict[str, dict[tuple[str, str], int]] = {}
    for month, town, band, n in rows:
        truth_now.setdefault(month, {})[(town, band)] = int(n)
    month = sorted(pubs[-1])[0]
    assert any(v is None for v in pubs[0][month].values())  # small cells exist and are hidden
    assert all(v is None or v == 0 or v >= 10 for p in pubs for v in p[month].values())
    # Only the last release's truth is known here: the attacker is checked against it, and
    # the public values of all three releases are used by the attack.
    tables = [p[month] for p in pubs]
    cells = {c for t in tables for c in t}
    full = [{c: t.get(c, 0) for c in cells} for t in tables]
    truth = {c: _total(truth_now[month], c) for c in cells}
    found = attack(full, [truth] * 3, 10, population)
    assert [f for f in found if f.release == 2 or f.how != "totals"] == []


def _total(cells: dict[tuple[str, str], int], cell: tuple[str, str]) -> int:
    r, c = cell
    return sum(v for (rr, cc), v in cells.items() if r in (rr, TOTAL) and c in (cc, TOTAL))


def test_the_export_refuses_to_run_as_a_role_that_reads_personal_tables(
    db_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(db_url) as owner, pytest.raises(ExportError):
        publish(owner, ReleaseOptions(tmp_path, now=datetime.now(UTC) + timedelta(days=1)))


def test_publish_without_a_folder_is_a_one_line_config_error(db_url: str) -> None:
    res = mebuku("opendata", "publish", env={"MEBUKU_DATABASE_URL": db_url})
    assert res.returncode == 2
    assert "MEBUKU_OPENDATA_DIR" in res.stderr


def test_dataset_ids_are_unique() -> None:
    assert len(BY_ID) == len(DATASETS)


def test_budget_command_records_the_budget_the_views_compare_with(db_url: str) -> None:
    env = {"MEBUKU_DATABASE_URL": db_url, "MEBUKU_LANG": "ja"}
    res = mebuku("opendata", "budget", "2031", "12000000", env=env)
    assert res.returncode == 0, res.stderr
    assert "予算を記録しました" in res.stdout
    bad = mebuku("opendata", "budget", "2031", "5", "--program", "nope", env=env)
    assert bad.returncode == 2
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT spent_yen, budget_yen FROM opendata.subsidy_budget"
            " WHERE fiscal_year = 2031 AND program = 'mytaku'"
        ).fetchone()
    assert row == (0, 12_000_000)

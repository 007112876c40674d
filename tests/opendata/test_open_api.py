"""Issue 16, item 4: `/open/...` serves the latest release and its catalogue to anyone,
with caching headers, CORS and a rate limit, and reaches no table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes import calls, effective_routes
from core import roles
from core.web import db_conn, public
from opendata.release import ReleaseOptions, publish
from tests.conftest import make_settings
from tests.support.opendata_city import CityPlan, seed_city


@pytest.fixture(scope="module")
def release_dir(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("open-api")
    seed_city(db_url, CityPlan(start=datetime(2026, 5, 10, tzinfo=UTC), days=2, rides=60))
    with psycopg.connect(roles.role_url(db_url, "opendata")) as conn:
        rel = publish(conn, ReleaseOptions(out))
    return out, rel.release_id


@pytest.fixture(scope="module")
def client(db_url: str, release_dir: tuple[Path, str]):
    app = create_app(make_settings(db_url, "mqtt://127.0.0.1:1", opendata_dir=release_dir[0]))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_the_catalogue_is_public_cached_and_cors_open(client: TestClient) -> None:
    r = client.get("/open/catalog.jsonld")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["cache-control"] == "public, max-age=300"
    assert "dcat:Catalog" in r.text and "前橋市" in r.text
    again = client.get("/open/catalog.jsonld", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_latest_and_versioned_files(client: TestClient, release_dir) -> None:
    _, rid = release_dir
    r = client.get("/open/latest/mytaku_use.csv")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.text.startswith("年月,町丁コード,町丁名")
    v = client.get(f"/open/releases/{rid}/mytaku_use.csv")
    assert v.content == r.content
    assert "immutable" in v.headers["cache-control"]
    geo = client.get("/open/latest/towns.geojson")
    assert geo.headers["content-type"] == "application/geo+json; charset=utf-8"
    assert len(geo.json()["features"]) == 275
    index = client.get("/open/").json()
    assert index["release_id"] == rid and index["k"] == 10


@pytest.mark.parametrize(
    "path",
    [
        "/open/latest/fare_residents.csv",
        "/open/latest/fare_ledger",
        "/open/latest/..%2F..%2FLATEST",
        "/open/latest/%2Fetc%2Fpasswd",
        "/open/releases/20990101T000000Z/mytaku_use.csv",
        "/open/releases/..%2F..%2F/mytaku_use.csv",
        "/open/releases/latest/metadata.json",
    ],
)
def test_unknown_files_are_404_or_422_problems(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert r.headers["content-type"].startswith("application/problem+json")


def test_nothing_under_open_can_reach_a_table(client: TestClient, db_url: str) -> None:
    """No /open route takes a database connection, and no table's name is a file."""
    views = [
        v for v in effective_routes(cast(FastAPI, client.app).routes) if v.path.startswith("/open/")
    ]
    assert len(views) == 4 and all(v.is_api for v in views)
    for view in views:
        deps = list(calls(view.dependant))
        assert public in deps, view.path
        assert db_conn not in deps, view.path
    with psycopg.connect(db_url) as owner:
        rels = [n for s, n, _ in roles.relations(owner) if s != "opendata"]
    assert len(rels) > 40
    for name in rels:
        cast(FastAPI, client.app).state.rate_buckets = {}  # this test is not about the limit
        for path in (f"/open/latest/{name}", f"/open/latest/{name}.csv"):
            assert client.get(path).status_code == 404, path


def test_no_release_yet_is_a_japanese_404_problem(db_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(db_url, "mqtt://127.0.0.1:1", opendata_dir=tmp_path))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/open/catalog.jsonld")
    assert r.status_code == 404
    assert r.json()["title"] == "オープンデータはまだ公開されていません"


def test_the_rate_limit_answers_429_with_retry_after(db_url: str, release_dir) -> None:
    app = create_app(make_settings(db_url, "mqtt://127.0.0.1:1", opendata_dir=release_dir[0]))
    with TestClient(app, raise_server_exceptions=False) as c:
        codes = [c.get("/open/latest/metadata.json").status_code for _ in range(125)]
        last = c.get("/open/latest/metadata.json")
    assert codes[:120] == [200] * 120
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1


def test_the_index_page_is_japanese_html_for_browsers(client: TestClient, release_dir) -> None:
    _, rid = release_dir
    r = client.get("/open/", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["access-control-allow-origin"] == "*"
    page = r.text
    assert '<html lang="ja">' in page and rid in page
    assert "マイタク利用状況（町丁・年齢区分別）" in page
    assert 'href="latest/mytaku_use.csv"' in page and "データ定義書" in page
    assert "10 人未満を表す数値はありません" in page
    en = client.get("/open/", headers={"Accept": "text/html", "Accept-Language": "en"}).text
    assert '<html lang="en">' in en and "MyTaku use by town and age band" in en
    assert client.get("/open/").json()["release_id"] == rid  # JSON for programs

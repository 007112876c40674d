"""Dashboards are current, provisioning matches the published data sources, and
`mebuku grafana push` / `check` work over HTTP against a Grafana protocol test double
(tests/grafana/fake_grafana.py: no Grafana server can run here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from api.app import create_app
from api.grafana import build
from api.grafana.cli import app as grafana_cli
from api.grafana.push import Connection, datasources
from api.keys import create_api_key
from core.settings import Settings
from tests.api.live import serve
from tests.conftest import REPO_ROOT
from tests.grafana.fake_grafana import FakeGrafana, running

PROVISIONING = REPO_ROOT / "grafana" / "provisioning"


def test_committed_dashboards_are_current() -> None:
    diffs = build.differences(REPO_ROOT / "grafana" / "dashboards")
    diffs += build.provisioning_differences(PROVISIONING)
    assert not diffs, f"run `mebuku grafana build`: {diffs}"


def test_every_dashboard_exists_in_japanese_and_english() -> None:
    """Japanese is the default set (declared uid and folder); English copies have their own
    uid and folder, and each links to the other."""
    dashboards = build.collect()
    by_uid = {d["uid"]: (f, d) for f, d in dashboards}
    ja = [(f, d) for f, d in dashboards if "ja" in d["tags"]]
    assert ja and len(ja) * 2 == len(dashboards)
    for folder, d in ja:
        en_folder, en = by_uid[d["uid"] + "-en"]
        assert folder in build.FOLDERS and en_folder == folder + "-en"
        assert "en" in en["tags"] and "ja" not in en["tags"]
        assert [link["url"] for link in d["links"]] == [f"/d/{en['uid']}"]
        assert [link["url"] for link in en["links"]] == [f"/d/{d['uid']}"]
        assert d["title"] != en["title"]
        # Same panels and queries' shape in both languages.
        assert [p["type"] for p in d["panels"]] == [p["type"] for p in en["panels"]]


def test_providers_give_every_folder_a_title_in_its_language() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "mebuku.yaml").read_text())
    by_uid = {p["folderUid"]: p for p in providers["providers"]}
    folders = {f for f, _ in build.collect()}
    assert set(by_uid) == {f"mebuku-{f}" for f in folders}
    assert by_uid["mebuku-council"]["folder"] == "ローカル5G推進協議会"
    assert by_uid["mebuku-council-en"]["folder"] == "Local 5G council (English)"
    for folder in folders:
        assert by_uid[f"mebuku-{folder}"]["options"]["path"].endswith(f"/{folder}")


def test_alert_rule_speaks_japanese_and_reads_a_grafana_view() -> None:
    doc = yaml.safe_load((PROVISIONING / "alerting" / "ingest.yaml").read_text())
    (group,) = doc["groups"]
    (rule,) = group["rules"]
    assert rule["title"] == "データ受信処理の停滞または無応答"
    assert group["folder"] == "交通事業者"
    assert rule["annotations"]["summary_en"].startswith("An ingest worker")
    assert "grafana.ingest_heartbeat" in rule["data"][0]["model"]["rawSql"]


def test_build_writes_folders_and_removes_stale(tmp_path: Path) -> None:
    (tmp_path / "city").mkdir()
    (tmp_path / "city" / "gone.json").write_text("{}")
    paths = build.write(tmp_path)
    assert not (tmp_path / "city" / "gone.json").exists()
    assert {p.parent.name for p in paths} == {
        *build.FOLDERS,
        *(f"{f}-en" for f in build.FOLDERS),
    }
    assert build.differences(tmp_path) == []
    (tmp_path / "city" / "gone.json").write_text("{}")
    runner = CliRunner()
    for lang, said in (("ja", "古いファイル：city/gone.json"), ("en", "stale city/gone.json")):
        check = runner.invoke(
            grafana_cli, ["build", "--check", "--out", str(tmp_path)], env={"MEBUKU_LANG": lang}
        )
        assert check.exit_code == 1 and said in check.output, check.output


def test_dashboards_are_well_formed() -> None:
    dashboards = build.collect()
    assert any(d["uid"] == "mebuku-platform" for _, d in dashboards)
    for _, d in dashboards:
        assert d["time"]["from"].startswith("now-") and d["time"]["to"] == "now"
        assert d["timezone"] == "Asia/Tokyo"
        for v in d["templating"]["list"]:
            assert v["name"] and v["datasource"]["uid"] == "mebuku-timescale"
    with pytest.raises(ValueError, match="uid used twice"):
        build.validate([dashboards[0], dashboards[0]])
    with pytest.raises(ValueError, match="folder"):
        build.validate([("everyone", dashboards[0][1])])


def test_provisioning_matches_published_datasources() -> None:
    ds_file = yaml.safe_load((PROVISIONING / "datasources" / "mebuku.yaml").read_text())
    provisioned = {d["uid"]: d for d in ds_file["datasources"]}
    conn = Connection("h:5432", "db", "u", "pw", "http://api:8000", "key")
    for ds in datasources(conn):
        p = provisioned[ds["uid"]]
        assert p["type"] == ds["type"]
        assert set(p["jsonData"]) == set(ds["jsonData"])
        assert set(p["secureJsonData"]) == set(ds["secureJsonData"])
    sql = provisioned["mebuku-timescale"]
    assert sql["jsonData"]["timescaledb"] is True
    assert sql["jsonData"]["postgresVersion"] >= 1500
    assert sql["secureJsonData"]["password"] == "${MEBUKU_DB_PASSWORD}"
    api = provisioned["mebuku-api"]
    assert api["url"] == "${MEBUKU_API_URL}/grafana"
    assert api["secureJsonData"]["httpHeaderValue1"] == "${MEBUKU_GRAFANA_API_KEY}"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "mebuku.yaml").read_text())
    assert all(p["type"] == "file" for p in providers["providers"])


def test_push_is_idempotent_and_check_reports_health(
    settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeGrafana(token="glsa_test")
    db = conninfo_to_dict(db_url)
    key = create_api_key(db_url, "council", label="grafana")
    runner = CliRunner()
    with running(fake) as grafana_url, serve(create_app(settings, domain_routers=())) as api_url:
        for name, value in {
            "GRAFANA_URL": grafana_url,
            "GRAFANA_TOKEN": "glsa_test",
            "MEBUKU_DB_HOST": f"{db['host']}:{db['port']}",
            "MEBUKU_DB_NAME": str(db["dbname"]),
            "MEBUKU_DB_USER": "mebuku_grafana",  # the role Grafana reads as
            "MEBUKU_DB_PASSWORD": str(db.get("password", "")),
            "MEBUKU_API_URL": api_url,
            "MEBUKU_GRAFANA_API_KEY": key,
            "MEBUKU_LANG": "en",  # the messages this test reads are the English ones
        }.items():
            monkeypatch.setenv(name, value)

        first = runner.invoke(grafana_cli, ["push"])
        assert first.exit_code == 0, first.output
        # Each item by its kind, uid and title, in the language of the process.
        assert "created data source mebuku-timescale" in first.output
        assert "created folder mebuku-operators (交通事業者)" in first.output
        assert (
            "created folder mebuku-city-en (Maebashi City (restricted) (English))" in first.output
        )
        assert "created dashboard " in first.output
        assert set(fake.datasources) == {"mebuku-timescale", "mebuku-api"}
        expected = {d["uid"]: f for f, d in build.collect()}
        assert {u: d["meta"]["folderUid"] for u, d in fake.dashboards.items()} == {
            u: f"mebuku-{f}" for u, f in expected.items()
        }
        # The city folder is closed to Grafana's default Viewer/Editor roles: admins only.
        assert fake.folder_permissions == {"mebuku-city": [], "mebuku-city-en": []}
        assert fake.folders["mebuku-operators"]["title"] == "交通事業者"
        snapshot = (dict(fake.datasources), {u: d["dashboard"] for u, d in fake.dashboards.items()})

        second = runner.invoke(grafana_cli, ["push"])
        assert second.exit_code == 0, second.output
        assert "created" not in second.output  # everything existed: updated in place
        monkeypatch.setenv("MEBUKU_LANG", "ja")
        again = runner.invoke(grafana_cli, ["push"])
        assert again.exit_code == 0, again.output
        assert "更新：データソース mebuku-timescale" in again.output
        assert "更新：フォルダ mebuku-operators（交通事業者）" in again.output
        assert "更新：ダッシュボード " in again.output and "作成：" not in again.output
        assert not any(w in again.output for w in ("updated", "datasource", "folder", "dashboard "))
        healthy_ja = runner.invoke(grafana_cli, ["check"])
        assert "mebuku-timescale: 正常" in healthy_ja.output
        monkeypatch.setenv("MEBUKU_LANG", "en")
        assert (
            dict(fake.datasources),
            {u: d["dashboard"] for u, d in fake.dashboards.items()},
        ) == snapshot

        healthy = runner.invoke(grafana_cli, ["check"])
        assert healthy.exit_code == 0, healthy.output
        assert "mebuku-timescale: ok" in healthy.output and "mebuku-api: ok" in healthy.output

        monkeypatch.setenv("MEBUKU_GRAFANA_API_KEY", "mbk_revoked_or_wrong")
        assert runner.invoke(grafana_cli, ["push"]).exit_code == 0
        broken = runner.invoke(grafana_cli, ["check"])
        assert broken.exit_code == 1
        assert "mebuku-api: FAILED" in broken.output and "HTTP 401" in broken.output.replace(
            "\n", ""
        )

        monkeypatch.setenv("GRAFANA_TOKEN", "wrong")
        assert runner.invoke(grafana_cli, ["push"]).exit_code != 0


def test_push_opens_the_city_folder_to_named_teams_only(
    settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeGrafana(token="glsa_test")
    fake.teams = {"city-finance": 7, "operators": 8}
    db = conninfo_to_dict(db_url)
    runner = CliRunner()
    with running(fake) as grafana_url:
        for name, value in {
            "GRAFANA_URL": grafana_url,
            "GRAFANA_TOKEN": "glsa_test",
            "MEBUKU_DB_HOST": f"{db['host']}:{db['port']}",
            "MEBUKU_DB_NAME": str(db["dbname"]),
            "MEBUKU_DB_USER": "mebuku_grafana",
            "MEBUKU_DB_PASSWORD": "",
            "MEBUKU_API_URL": "http://127.0.0.1:9",
            "MEBUKU_GRAFANA_API_KEY": "mbk_unused",
        }.items():
            monkeypatch.setenv(name, value)
        ok = runner.invoke(grafana_cli, ["push", "--city-team", "city-finance"])
        assert ok.exit_code == 0, ok.output
        team = [{"teamId": 7, "permission": 1}]
        assert fake.folder_permissions == {"mebuku-city": team, "mebuku-city-en": team}
        monkeypatch.setenv("MEBUKU_LANG", "ja")  # the CLI's default, whatever the locale
        missing = runner.invoke(grafana_cli, ["push", "--city-team", "city-finanse"])
        assert missing.exit_code == 1
        assert "Grafana のチーム 'city-finanse' がありません" in missing.output
        monkeypatch.setenv("MEBUKU_LANG", "en")
        missing = runner.invoke(grafana_cli, ["push", "--city-team", "city-finanse"])
        assert missing.exit_code == 1
        assert "team 'city-finanse' not found" in missing.output
        assert fake.folder_permissions == {"mebuku-city": team, "mebuku-city-en": team}


PROPERTY_IDS = {"displayName", "unit", "custom.hidden", "mappings"}


def test_dashboard_json_structure_renders() -> None:
    """What Grafana needs to lay out and draw each panel (no Grafana server runs here):
    panels inside the 24-column grid without overlaps, overrides Grafana understands,
    value mappings in its format, map layers colouring by a column the query returns."""
    for _folder, d in build.collect():
        cells: set[tuple[int, int]] = set()
        for p in build.iter_panels(d):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, (d["uid"], p["title"])
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & mine, f"{d['uid']}: {p['title']} overlaps another panel"
            cells |= mine
            for o in p["fieldConfig"]["overrides"]:
                assert o["matcher"]["id"] == "byName" and o["matcher"]["options"]
                for prop in o["properties"]:
                    assert prop["id"] in PROPERTY_IDS, prop
                    if prop["id"] == "mappings":
                        (m,) = prop["value"]
                        assert m["type"] == "value"
                        assert all(set(v) == {"text", "index"} for v in m["options"].values())
            sql = " ".join(t.get("rawSql", "") for t in p["targets"])
            for layer in p["options"].get("layers", []):
                colour = layer["config"]["style"]["color"]["field"]
                assert f'"{colour}"' in sql, f"{p['title']}: map colours by {colour!r}"

"""The council's API: registry, KPIs, coverage, sensors, comparison and the PDF report,
through the real app (api.app.create_app) with real API keys and a real database."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from api.app import create_app
from core.roles import role_url
from core.settings import Settings
from fiveg.trial import load_definition
from tests.fiveg import known_set
from tests.support.credentials import api_keys

TRIALS = Path(__file__).resolve().parents[2] / "fiveg" / "trials"
PNG_DIR = Path("/tmp/fiveg-report-pages")


@pytest.fixture(scope="module")
def client(
    settings: Settings, db_url: str
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    known_set.insert_direct(db_url, known_set.samples())
    creds = api_keys(db_url)
    keys = {who: creds.headers(who) for who in ("council", "admin", "operator")}
    # The API logs in as mebuku_api, as deployed (core/roles/grants.toml).
    api = settings.model_copy(update={"database_url": role_url(db_url, "api")})
    app = create_app(api, domain_routers=("fiveg.http",))
    with TestClient(app) as c:
        body = known_set.trial_definition()
        r = c.put("/v1/fiveg/trials/known-bus-trial", json=body, headers=keys["admin"])
        assert r.status_code == 200, r.text
        yield c, keys


def test_roles(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    c, keys = client
    assert c.get("/v1/fiveg/trials").status_code == 401
    assert c.get("/v1/fiveg/trials", headers=keys["operator"]).status_code == 403
    assert c.get("/v1/fiveg/trials", headers=keys["council"]).status_code == 200
    body = known_set.trial_definition("council-may-not")
    r = c.put("/v1/fiveg/trials/council-may-not", json=body, headers=keys["council"])
    assert r.status_code == 403


def test_registry_and_bad_input(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    c, keys = client
    for path in sorted(TRIALS.iterdir()):
        d = load_definition(path)
        r = c.put(f"/v1/fiveg/trials/{d.trial_id}", content=d.model_dump_json(),
                  headers={**keys["admin"], "Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 200, r.text
    listed = c.get("/v1/fiveg/trials?theme=emergency", headers=keys["council"]).json()
    assert [t["trial_id"] for t in listed] == ["ambulance-video-2026"]
    got = c.get("/v1/fiveg/trials/bus-supervision-2026", headers=keys["council"]).json()
    targets = {t["kpi"]: t for t in got["targets"]}
    assert targets["ul_mbps_p5"]["value"] == 25 and "22.186" in targets["ul_mbps_p5"]["source"]
    assert targets["jitter_ms_mean"]["value"] == 10
    assert len(got["definition"]["gnbs"]) == 2
    bad = known_set.trial_definition("bad-trial")
    bad["targets"] = [{"kpi": "speed", "op": ">=", "value": 1, "source": "x"}]
    r = c.put("/v1/fiveg/trials/bad-trial", json=bad, headers=keys["admin"])
    assert r.status_code == 422
    r = c.put("/v1/fiveg/trials/other-id", json=known_set.trial_definition(), headers=keys["admin"])
    assert r.status_code == 422 and r.json()["type"].endswith("trial-id-mismatch")
    r = c.get("/v1/fiveg/trials/nope/kpis", headers=keys["council"])
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "見つかりません" and r.headers["content-language"] == "ja"
    r = c.get("/v1/fiveg/trials/nope/kpis", headers={**keys["council"], "Accept-Language": "en"})
    assert r.json()["title"] == "Not found" and r.json()["type"].endswith("/not-found")
    r = c.get("/v1/fiveg/trials/known-bus-trial/kpis?bucket=5 minutes", headers=keys["council"])
    assert r.status_code == 422 and r.json()["type"].endswith("bad-bucket")
    r = c.get("/v1/fiveg/trials/known-bus-trial/kpis?from=2026-11-20T01:00:00Z"
              "&to=2026-11-20T00:00:00Z", headers=keys["council"])  # fmt: skip
    assert r.status_code == 422 and r.json()["type"].endswith("bad-kpi-request")
    assert r.json()["detail"] == "終了日時（to）は開始日時（from）より後にしてください"
    en = {**keys["council"], "Accept-Language": "en"}
    r = c.get("/v1/fiveg/trials/known-bus-trial/kpis?from=2026-11-20T01:00:00Z"
              "&to=2026-11-20T00:00:00Z", headers=en)  # fmt: skip
    assert r.json()["detail"] == "'to' must be after 'from'"
    r = c.get("/v1/fiveg/trials/known-bus-trial/sensors?bucket=1s", headers=keys["council"])
    assert r.status_code == 200  # one hour in 1 s buckets is fine
    bad = known_set.trial_definition("nul-trial")
    bad["title"] = "a\x00b"
    r = c.put("/v1/fiveg/trials/nul-trial", json=bad, headers=keys["admin"])
    assert r.status_code == 422 and "NUL" in r.text
    assert c.get("/v1/fiveg/trials/Bad%00Id", headers=keys["council"]).status_code == 422
    assert c.delete("/v1/fiveg/trials/remote-class-2026", headers=keys["admin"]).status_code == 204
    assert c.get("/v1/fiveg/trials/remote-class-2026", headers=keys["council"]).status_code == 404


def test_kpis_coverage_compare(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    c, keys = client
    r = c.get("/v1/fiveg/trials/known-bus-trial/kpis", headers=keys["council"])
    assert r.status_code == 200, r.text
    k = r.json()
    assert k["overall"]["samples"] == 600
    assert k["overall"]["kpis"]["ul_mbps_p5"] == pytest.approx(5.95)
    assert k["handovers"] == 9 and k["handovers_per_device_hour"] == pytest.approx(5.4)
    assert k["scorecard"]["passed"] is False
    assert k["scorecard"]["gaps"] == [
        {"start": "2026-11-20T00:30:00Z", "end": "2026-11-20T00:40:00Z"}
    ]
    assert len(k["series"]) == 10 and [d["device_id"] for d in k["devices"]] == ["bus-01", "bus-02"]
    hourly = c.get("/v1/fiveg/trials/known-bus-trial/kpis?bucket=1h", headers=keys["council"])
    hk = hourly.json()
    assert hk["bucket_seconds"] == 3600 and len(hk["series"]) == 1
    assert hk["scorecard"]["buckets_total"] == 12  # coverage stays at 5 minutes
    rollup = c.get("/v1/fiveg/trials/known-bus-trial/kpis?source=rollup&bucket=1h",
                   headers=keys["council"]).json()  # fmt: skip
    assert rollup["source"] == "rollup" and rollup["overall"]["samples"] == 600
    r = c.get("/v1/fiveg/trials/known-bus-trial/kpis?source=rollup&bucket=5m",
              headers=keys["council"])  # fmt: skip
    assert r.status_code == 422 and "1時間単位" in r.json()["detail"]
    r = c.get("/v1/fiveg/trials/known-bus-trial/kpis?source=rollup", headers=keys["council"])
    assert r.status_code == 200 and r.json()["bucket_seconds"] == 3600  # the default fits
    assert k["scorecard"]["verdict"] == "fail"  # 10 of 12 buckets: enough data to judge
    cov = c.get("/v1/fiveg/trials/known-bus-trial/coverage?min_samples=10",
                headers=keys["council"])  # fmt: skip
    assert cov.headers["content-type"].startswith("application/geo+json")
    feats = cov.json()["features"]
    assert sorted(f["properties"]["samples"] for f in feats) == [5, 295, 300]
    cmp = c.get("/v1/fiveg/compare?source=raw", headers=keys["council"]).json()
    mine = next(x for x in cmp if x["trial_id"] == "known-bus-trial")
    assert mine["theme"] == "transport" and mine["samples"] == 600 and mine["passed"] is False


def _pdf_text(pdf: bytes) -> list[str]:
    return [re.sub(r"\s+", " ", p.extract_text()) for p in PdfReader(io.BytesIO(pdf)).pages]


# ASCII words a Japanese report may contain: units, standard and product names, and the
# trial's own ids (data, not labels). Anything else is an English label left behind.
ALLOWED_ASCII = {
    "Mbit", "s", "ms", "m", "dBm", "dB", "MHz", "GHz", "RSRP", "RSRQ", "SINR", "SA", "NSA",
    "ITU", "R", "M", "IMT", "TS", "GPP", "V", "X", "EPSG", "API", "e", "Stat", "ACIA", "G",
    "PostgreSQL", "percentile", "cont", "Mebuku", "n", "p", "K",
}  # fmt: skip


def _english_words(pages: list[str], data_ids: list[str]) -> set[str]:
    allowed = ALLOWED_ASCII | {w for i in data_ids for w in re.findall(r"[A-Za-z]+", i)}
    return {w for p in pages for w in re.findall(r"[A-Za-z]+", p)} - allowed


def _look(pdf: bytes, name: str) -> None:
    """Render the pages for a human look (pdftoppm -png -r 60, kept under /tmp)."""
    if shutil.which("pdftoppm"):
        PNG_DIR.mkdir(exist_ok=True)
        (PNG_DIR / f"{name}.pdf").write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", "60", str(PNG_DIR / f"{name}.pdf"),
                        str(PNG_DIR / name)], check=True, timeout=60)  # fmt: skip


def test_report_pdf(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    c, keys = client
    r = c.get("/v1/fiveg/trials/known-bus-trial/report", headers=keys["council"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and r.headers["content-language"] == "ja"
    _look(r.content, "ja")
    pages = _pdf_text(r.content)
    assert len(pages) == 5
    for n, page in enumerate(pages, start=1):
        assert f"{n} / 5 ページ" in page
    # Page 1, the summary: the verdict and the numbers that decide it.
    first = pages[0]
    assert "総合判定：不合格" in first
    ul = "上り通信速度（5パーセンタイル値・体感速度）"
    assert f"{ul}：測定値 5.95 Mbit/s（目標 25 Mbit/s 以上）→ 不合格" in first
    assert "往復遅延（95パーセンタイル値）：測定値 80.0 ms（目標 50 ms 以下）→ 不合格" in first
    assert "データ充足率 83.3 %（5分区間 12 区間中 10 区間" in first
    assert "端末 2 台から 600 件" in first
    assert "分野別の判定" in first and "教育（遠隔授業）" in first
    # Page 2, the scorecard: each target once, sources as publications.
    card = pages[1]
    assert "25 Mbit/s 以上 [2]" in card and "5.95 Mbit/s" in card and "66.7 %" in card
    assert "50 ms 以下" in card and "80.0 ms" in card and card.count("不合格") >= 3
    assert card.replace(" ", "").count("上り通信速度（5パーセンタイル値・体感速度）") == 1
    assert "[2] 3GPP TS 22.186" in card and "ITU-R 報告 M.2410-0" in card
    assert "docs/" not in "".join(pages) and ".md" not in "".join(pages)
    assert "無線方式：周波数帯 n79、スタンドアロン方式（SA）、帯域幅 100 MHz" in card
    for code in ("sinr_db", "rsrq_db", "rsrp_dbm", "bandwidth_mhz", "ul_mbps", "Radio:"):
        assert code not in "".join(pages)
    assert "エリアマップ" in pages[3] and "EPSG:6677" in pages[3]
    last = pages[4]
    assert "ハンドオーバー 9 回（端末1台1時間あたり 5.40 回）" in last
    assert "信頼性 80.0 %" in last
    # Per bus: bus-01's UL p5 is 5.0 (odd values), bus-02's 6.0; both fail 25 Mbit/s.
    assert "bus-01 300 80.0 ms 不合格 5.00 Mbit/s 不合格" in last
    assert "bus-02 300 80.0 ms 不合格 6.00 Mbit/s 不合格" in last
    assert "2026-11-20 09:30 2026-11-20 09:40 10分" in last  # the gap, in JST
    ids = ["known-bus-trial", "bus-01", "bus-02", "env-01", "n79", "JR前橋駅"]  # data
    assert _english_words(pages, ids) == set()


def test_report_in_english_on_request(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    c, keys = client
    for extra, params in (
        ({"Accept-Language": "en-GB,en;q=0.9,ja;q=0.5"}, {}),
        ({}, {"lang": "en"}),
    ):
        r = c.get(
            "/v1/fiveg/trials/known-bus-trial/report",
            params=params,
            headers={**keys["council"], **extra},
        )
        assert r.status_code == 200 and r.headers["content-language"] == "en"
        pages = _pdf_text(r.content)
        assert "Overall verdict: Fail" in pages[0] and "Page 1 of 5" in pages[0]
        assert (
            "Uplink throughput, 5th percentile (user-experienced): measured 5.95 Mbit/s" in pages[0]
        )
        assert "at least 25 Mbit/s [2]" in pages[1] and "Scorecard against targets" in pages[1]
        assert "Radio: band n79, standalone (SA), bandwidth 100 MHz" in pages[1]
        assert "handovers 9 (5.40 per device-hour)" in pages[4] and "10 min" in pages[4]
        assert not re.search(r"[\u3040-\u30ff]", "".join(pages[1:]))  # no kana in labels
    _look(r.content, "en")
    r = c.get("/v1/fiveg/trials/known-bus-trial/report?lang=fr", headers=keys["council"])
    assert r.status_code == 422


def test_report_period_option(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    """The first half hour only: 6 buckets of 60 samples, no gap, so the verdict is judged
    on 360 samples; the charts and tables follow the window."""
    c, keys = client
    params = {
        "from": known_set.START.isoformat(),
        "to": (known_set.START + (known_set.END - known_set.START) / 2).isoformat(),
    }
    r = c.get("/v1/fiveg/trials/known-bus-trial/report", params=params, headers=keys["council"])
    assert r.status_code == 200, r.text
    pages = _pdf_text(r.content)
    assert "対象期間：2026-11-20 09:00 ～ 2026-11-20 09:30（日本時間）" in pages[0]
    assert "端末 2 台から 360 件" in pages[0] and "データ充足率 100.0 %" in pages[0]
    assert "欠損なし" in pages[-1]
    bad = c.get(
        "/v1/fiveg/trials/known-bus-trial/report",
        params={"from": params["to"], "to": params["from"]},
        headers=keys["council"],
    )
    assert bad.status_code == 422 and bad.json()["type"].endswith("bad-kpi-request")


def test_report_of_a_trial_without_data(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """Registered, no sample yet: a short report that says so (it was a 500 KeyError)."""
    c, keys = client
    body = known_set.trial_definition("empty-trial")
    body["devices"] = [
        {
            "device_id": "not-yet-01",
            "kind": "bus_modem",
            "label": "まだ届いていない非常に長い名前の自動運転バス車載通信機 1号車 (試験)",
        }
    ]
    assert (
        c.put("/v1/fiveg/trials/empty-trial", json=body, headers=keys["admin"]).status_code == 200
    )
    r = c.get("/v1/fiveg/trials/empty-trial/report", headers=keys["council"])
    assert r.status_code == 200, r.text
    _look(r.content, "empty")
    pages = _pdf_text(r.content)
    assert "この期間の測定データはまだ届いていません" in pages[0]
    assert "総合判定：判定不能（データ不足）" in pages[0]
    assert "データ充足率 0.0 %" in pages[0]
    assert _english_words(pages, ["empty-trial", "not-yet-01", "n79", "JR前橋駅"]) == set()
    en = c.get("/v1/fiveg/trials/empty-trial/report?lang=en", headers=keys["council"])
    assert "No data has arrived for this period yet" in _pdf_text(en.content)[0]


def test_long_trial_with_little_data_is_insufficient_not_pass_or_fail(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """The demo's old failure: a trial filed until 2028 read 0 % coverage with a flipping
    verdict, and /sensors with its default bucket answered 422."""
    c, keys = client
    body = known_set.trial_definition("long-trial")
    body["period_start"] = "2026-11-01T00:00:00+09:00"
    body["period_end"] = "2028-01-01T00:00:00+09:00"
    assert c.put("/v1/fiveg/trials/long-trial", json=body, headers=keys["admin"]).status_code == 200
    k = c.get("/v1/fiveg/trials/long-trial/kpis", headers=keys["council"])
    assert k.status_code == 200, k.text
    card = k.json()["scorecard"]
    assert card["verdict"] == "insufficient-data" and card["data_coverage_pct"] < 80
    assert k.json()["bucket_seconds"] >= 300
    sensors = c.get("/v1/fiveg/trials/long-trial/sensors", headers=keys["council"])
    assert sensors.status_code == 200, sensors.text
    assert isinstance(sensors.json(), list)
    fine = c.get("/v1/fiveg/trials/long-trial/sensors?bucket=1s", headers=keys["council"])
    assert fine.status_code == 422 and fine.json()["type"].endswith("bad-bucket")
    window = c.get(
        "/v1/fiveg/trials/long-trial/kpis",
        params={"from": known_set.START.isoformat(), "to": known_set.END.isoformat()},
        headers=keys["council"],
    ).json()
    assert window["scorecard"]["verdict"] == "fail"  # the measured hour itself is judged
    cmp = c.get("/v1/fiveg/compare?trial=long-trial", headers=keys["council"]).json()
    assert [x["verdict"] for x in cmp] == ["insufficient-data"]
    # The report's charts zoom to the hour with data instead of a sliver of a month.
    r = c.get("/v1/fiveg/trials/long-trial/report", headers=keys["council"])
    assert r.status_code == 200, r.text
    _look(r.content, "long")
    pages = _pdf_text(r.content)
    assert "総合判定：判定不能（データ不足）" in pages[0]
    assert "グラフはデータのある 2026-11-20 09:00 ～ 2026-11-20 10:00（日本時間）" in pages[2]


def test_report_survives_hostile_names(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """Names are data: markup, TeX dollars and ampersands are printed, never interpreted."""
    c, keys = client
    body = known_set.trial_definition("hostile-trial")
    body["title"] = "<b>試験</b> & $x^"
    body["sites"][0]["name"] = "駅 $\\frac{1}$ <i>"
    body["devices"][0]["label"] = (
        "バス & <font> 1号車 $ 前橋駅〜中央前橋駅 シャトル 遠隔監視用 車載通信機"
    )
    assert (
        c.put("/v1/fiveg/trials/hostile-trial", json=body, headers=keys["admin"]).status_code == 200
    )
    r = c.get("/v1/fiveg/trials/hostile-trial/report", headers=keys["council"])
    assert r.status_code == 200, r.text
    pages = _pdf_text(r.content)
    _look(r.content, "hostile")
    assert "<b>試験</b> & $x^" in pages[0] and "バス & <font> 1号車 $" in pages[1]
    # The long name wraps inside its cell (looked at: /tmp/fiveg-report-pages/hostile-5.png).
    assert "車載通信機 bus-01 300 80.0 ms 不合格" in pages[4]  # label, id below, then numbers

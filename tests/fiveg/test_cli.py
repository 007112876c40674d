"""`mebuku fiveg` as an operator runs it: load trial files, print KPIs, write the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pypdf import PdfReader

from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY
from tests.fiveg import known_set


def mebuku(db_url: str, *args: str, **lang: str) -> subprocess.CompletedProcess[str]:
    """`mebuku fiveg ARGS` in Japanese (the default), or as ``MEBUKU_LANG="en"`` says."""
    env = {**os.environ, "MEBUKU_DATABASE_URL": db_url, "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
           "COLUMNS": "200", "MEBUKU_LANG": "ja", **lang}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "fiveg", *args],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip


def test_load_trials_kpis_and_report(db_url: str, tmp_path: Path) -> None:
    known_set.insert_direct(db_url, known_set.samples())
    trial = tmp_path / "known.json"
    trial.write_text(json.dumps(known_set.trial_definition()), encoding="utf-8")
    files = sorted(str(p) for p in (REPO_ROOT / "fiveg" / "trials").iterdir())
    r = mebuku(db_url, "load-trial", str(trial), *files)
    assert r.returncode == 0, r.stderr
    assert "known-bus-trial を登録しました（交通（自動運転バスの遠隔監視）、端末 3 台）" in r.stderr
    assert (
        "ambulance-video-2026 を登録しました（救急搬送（救急車からの映像伝送）、端末 2 台）"
        in r.stderr
    )
    k = mebuku(db_url, "kpis", "known-bus-trial", "--json")
    assert k.returncode == 0, k.stderr
    body = json.loads(k.stdout)
    assert body["overall"]["samples"] == 600 and body["scorecard"]["passed"] is False
    table = mebuku(db_url, "kpis", "known-bus-trial")
    assert "上り通信速度（5パーセンタイル値・体感速度）" in table.stdout
    assert "総合判定：不合格" in table.stdout and "ul_mbps_p5" not in table.stdout
    en = mebuku(db_url, "kpis", "known-bus-trial", MEBUKU_LANG="en")
    assert "Uplink throughput, 5th percentile" in en.stdout and "overall: Fail" in en.stdout
    pdf = tmp_path / "r.pdf"
    rep = mebuku(db_url, "report", "known-bus-trial", "-o", str(pdf))
    assert rep.returncode == 0, rep.stderr
    assert pdf.read_bytes().startswith(b"%PDF-")
    # The period and the language, as the API has them (from/to, lang).
    half = (known_set.START + (known_set.END - known_set.START) / 2).isoformat()
    rep = mebuku(db_url, "report", "known-bus-trial", "-o", str(pdf), "--lang", "en",
                 "--from", known_set.START.isoformat(), "--to", half)  # fmt: skip
    assert rep.returncode == 0, rep.stderr
    first = PdfReader(pdf).pages[0].extract_text()
    assert "Overall verdict: Fail" in first and "360 samples from 2 devices" in first
    bad = mebuku(db_url, "report", "known-bus-trial", "--from", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr and "Traceback" not in bad.stderr
    bad = mebuku(db_url, "report", "known-bus-trial", "--from", half, "--to", half)
    assert bad.returncode == 2 and "終了日時（to）は開始日時（from）より後に" in bad.stderr


def test_invalid_definition_is_a_clear_error(db_url: str, tmp_path: Path) -> None:
    bad = known_set.trial_definition("broken-trial")
    bad["period_end"] = bad["period_start"]
    f = tmp_path / "broken.json"
    f.write_text(json.dumps(bad), encoding="utf-8")
    r = mebuku(db_url, "load-trial", str(f))
    assert r.returncode == 2
    assert "実証の定義が正しくありません" in r.stderr
    assert "period_end は period_start より後にしてください" in r.stderr
    assert "Traceback" not in r.stderr
    en = mebuku(db_url, "load-trial", str(f), MEBUKU_LANG="en")
    assert en.returncode == 2
    assert "invalid trial definition" in en.stderr and "period_end must be after" in en.stderr


def test_pydantic_errors_of_a_definition_are_in_japanese(db_url: str, tmp_path: Path) -> None:
    """Each refused field by its place in the file and a Japanese sentence for its error
    type (missing, extra_forbidden, string_type, greater_than, ...), never pydantic's
    English; English when the process is English."""
    bad = known_set.trial_definition("broken-trial")
    del bad["title"]
    bad["colour"] = "green"
    bad["latency_bound_ms"] = 0
    bad["devices"][0]["device_id"] = 5
    bad["theme"] = "space"
    bad["targets"] = [{"kpi": "warp_factor", "op": ">=", "value": 9, "source": "Star Trek"}]
    f = tmp_path / "broken.json"
    f.write_text(json.dumps(bad), encoding="utf-8")
    r = mebuku(db_url, "load-trial", str(f))
    assert r.returncode == 2, r.stderr
    for line in (
        "title：値が必要です",
        "colour：定義にない項目です",
        "latency_bound_ms：0.0 より大きい値にしてください",
        "devices[0].device_id：文字列ではありません",
        "theme：'transport'、'education'、'emergency' のいずれかを指定してください",
        "targets[0].kpi：KPI 'warp_factor' はありません（使える KPI：",
    ):
        assert line in r.stderr, r.stderr
    for english in ("Field required", "Extra inputs", "Input should", "unknown KPI"):
        assert english not in r.stderr, r.stderr
    en = mebuku(db_url, "load-trial", str(f), MEBUKU_LANG="en")
    assert en.returncode == 2
    assert "title: Field required" in en.stderr
    assert "colour: Extra inputs are not permitted" in en.stderr
    assert "targets[0].kpi: unknown KPI 'warp_factor'" in en.stderr


def test_demo_trials_start_now_and_wait_for_data(db_url: str) -> None:
    """What `mebuku demo` does: its trials start when it starts, last a few hours, and say
    'insufficient data' until samples cover enough of the elapsed time."""
    from datetime import UTC, datetime, timedelta

    files = sorted(str(p) for p in (REPO_ROOT / "fiveg" / "demo_trials").glob("*.toml"))
    before = datetime.now(UTC) - timedelta(minutes=1)
    r = mebuku(db_url, "load-trial", "--starting-now", "--hours", "4", *files)
    assert r.returncode == 0, r.stderr
    listed = mebuku(db_url, "kpis", "demo-education", "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    start = datetime.fromisoformat(body["from"].replace("Z", "+00:00"))
    assert before <= start <= datetime.now(UTC)
    assert body["scorecard"]["verdict"] == "insufficient-data"
    table = mebuku(db_url, "kpis", "demo-education")
    assert "総合判定：判定不能（データ不足）：データ充足率" in table.stdout

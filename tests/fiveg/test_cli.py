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


def mebuku(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEBUKU_DATABASE_URL": db_url, "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
           "COLUMNS": "200"}  # fmt: skip
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
    assert "loaded known-bus-trial (transport, 3 devices)" in r.stderr
    assert "loaded ambulance-video-2026 (emergency, 2 devices)" in r.stderr
    k = mebuku(db_url, "kpis", "known-bus-trial", "--json")
    assert k.returncode == 0, k.stderr
    body = json.loads(k.stdout)
    assert body["overall"]["samples"] == 600 and body["scorecard"]["passed"] is False
    table = mebuku(db_url, "kpis", "known-bus-trial")
    assert "ul_mbps_p5" in table.stdout and "overall: FAIL" in table.stdout
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
    assert bad.returncode == 2 and "'to' must be after 'from'" in bad.stderr


def test_invalid_definition_is_a_clear_error(db_url: str, tmp_path: Path) -> None:
    bad = known_set.trial_definition("broken-trial")
    bad["period_end"] = bad["period_start"]
    f = tmp_path / "broken.json"
    f.write_text(json.dumps(bad), encoding="utf-8")
    r = mebuku(db_url, "load-trial", str(f))
    assert r.returncode == 2
    assert "invalid trial definition" in r.stderr and "period_end must be after" in r.stderr
    assert "Traceback" not in r.stderr


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
    assert "INSUFFICIENT DATA" in table.stdout

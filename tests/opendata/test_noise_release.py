"""Noisy resident counts (MEBUKU_OPENDATA_EPSILON > 0): the budget spent is recorded in
the release metadata and in the release table, and totals stay sums of published cells."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from core import roles
from opendata.release import ReleaseOptions, publish
from tests.support.opendata_city import CityPlan, seed_city


def test_a_noisy_release_records_its_privacy_loss(db_url: str, tmp_path: Path) -> None:
    seed_city(db_url, CityPlan(start=datetime(2026, 4, 20, tzinfo=UTC), days=20, rides=400,
                               residents=120))  # fmt: skip
    with psycopg.connect(roles.role_url(db_url, "opendata")) as conn:
        rel = publish(conn, ReleaseOptions(tmp_path, epsilon=1.0))
    meta = json.loads((rel.folder / "metadata.json").read_text())
    loss = meta["privacy_loss"]
    assert loss["epsilon_budget"] == 1.0
    assert loss["epsilon_spent"] == pytest.approx(1.0)
    tables = loss["tables"]
    assert {t["table"] for t in tables} == {"mytaku_use/2026-04", "mytaku_use/2026-05"}
    assert all(t["epsilon"] == pytest.approx(0.5) and t["scale"] == pytest.approx(2.0)
               for t in tables)  # fmt: skip
    with psycopg.connect(db_url) as owner:
        spent = owner.execute(
            "SELECT epsilon FROM opendata_releases WHERE release_id = %s", [rel.release_id]
        ).fetchone()
    assert spent == (pytest.approx(1.0),)
    rows = list(csv.DictReader(io.StringIO((rel.folder / "mytaku_use.csv").read_text())))
    for month in {r["年月"] for r in rows}:
        cells = [r for r in rows if r["年月"] == month]
        grand = next(
            r for r in cells if r["町丁コード"] == "_total" and r["年齢区分コード"] == "_total"
        )
        if grand["利用者数"]:
            col_totals = [
                r for r in cells if r["町丁コード"] == "_total" and r["年齢区分コード"] != "_total"
            ]
            if all(r["利用者数"] for r in col_totals):
                assert sum(int(r["利用者数"]) for r in col_totals) == int(grand["利用者数"])

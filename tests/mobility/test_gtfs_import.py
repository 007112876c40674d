"""GTFS-JP import: the real feed loads, broken feeds are refused with file/line/field and
leave the current version in place, and fares come from fare_rules."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.i18n import gettext_for
from core.settings import Settings
from mobility.gtfs.fares import zone_fare, zone_fare_async
from mobility.gtfs.freshness import expiry_warning
from mobility.gtfs.importer import current_version, import_feed
from mobility.gtfs.parser import FeedError, parse_time, read_feed
from tests.mobility.feeds import REAL_FEED, edit_line, feed_files, write_feed


def _csv(name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(REAL_FEED) as zf:
        return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8-sig"))))


def test_parse_time_accepts_times_past_midnight() -> None:
    assert parse_time("25:10:00") == 25 * 3600 + 600
    assert parse_time("7:05:09") == 7 * 3600 + 5 * 60 + 9
    with pytest.raises(ValueError):
        parse_time("07:61:00")


def test_real_feed_imports_with_japanese_ids(db_url: str) -> None:
    version = import_feed(db_url, REAL_FEED)
    assert version.row_counts["stop_times.txt"] == 6973
    assert version.row_counts["stops.txt"] == 369
    with psycopg.connect(db_url) as conn:
        current = current_version(conn)
        assert current is not None and current.id == version.id
        # IDs keep their full-width spaces and no BOM leaks into the first column.
        ids = {r[0] for r in conn.execute("SELECT route_id FROM gtfs_routes")}
        assert any("\u3000" in i for i in ids)
        assert not any(i.startswith("\ufeff") for i in ids)
        assert ids == {r["route_id"] for r in _csv("routes.txt")}
        n = conn.execute(
            "SELECT count(*) FROM gtfs_stop_times st JOIN gtfs_stops s"
            " ON s.feed_version = st.feed_version AND s.stop_id = st.stop_id"
            " WHERE st.feed_version = gtfs_current_version()"
        ).fetchone()
        assert n == (6973,)
    # The same file again is recognised and not re-imported.
    again = import_feed(db_url, REAL_FEED)
    assert again.unchanged and again.id == version.id


BROKEN = [
    # (file, line, field, edit of that line, expected message part)
    ("stop_times.txt", 5, "stop_id", lambda s: s.replace("t054_02", "nope_99"), "not in stops"),
    ("stop_times.txt", 3, "arrival_time", lambda s: s.replace("06:36:00,", "06:6x:00,", 1), "time"),
    ("trips.txt", 2, "route_id", lambda s: "x" + s, "not in routes"),
    ("stops.txt", 4, "stop_lat", lambda s: s.replace("36.", "north", 1), "not a number"),
]


@pytest.mark.parametrize(("file", "line", "field", "edit", "message"), BROKEN)
def test_broken_feed_is_refused_naming_file_line_field(
    db_url: str, tmp_path: Path, file: str, line: int, field: str, edit: object, message: str
) -> None:
    before = import_feed(db_url, REAL_FEED)
    broken = write_feed(edit_line(feed_files(), file, line, edit), tmp_path / "broken.zip")  # type: ignore[arg-type]
    with pytest.raises(FeedError) as err:
        import_feed(db_url, broken)
    assert (err.value.file, err.value.line, err.value.field) == (file, line, field)
    assert message in str(err.value) or message in err.value.message
    with psycopg.connect(db_url) as conn:
        current = current_version(conn)
        assert current is not None and current.id == before.id


def test_missing_required_file_and_column(db_url: str, tmp_path: Path) -> None:
    files = feed_files()
    del files["stops.txt"]
    with pytest.raises(FeedError, match=r"stops\.txt: required file missing"):
        import_feed(db_url, write_feed(files, tmp_path / "a.zip"))
    files = edit_line(feed_files(), "trips.txt", 1, lambda s: s.replace("service_id", "svc"))
    with pytest.raises(FeedError) as err:
        import_feed(db_url, write_feed(files, tmp_path / "b.zip"))
    assert (err.value.file, err.value.line, err.value.field) == ("trips.txt", 1, "service_id")


def test_a_refusal_reads_in_japanese(tmp_path: Path) -> None:
    """What `mebuku gtfs import` prints: the file, line and field, and why, in Japanese."""
    ja = gettext_for("ja")
    files = feed_files()
    del files["stops.txt"]
    with pytest.raises(FeedError) as err:
        read_feed(write_feed(files, tmp_path / "a.zip"))
    assert err.value.describe(ja) == "stops.txt: 必須のファイルがありません"
    files = edit_line(feed_files(), "trips.txt", 1, lambda s: s.replace("service_id", "svc"))
    with pytest.raises(FeedError) as err:
        read_feed(write_feed(files, tmp_path / "b.zip"))
    assert err.value.describe(ja) == "trips.txt 1行目 項目 service_id: 必須の列がありません"
    assert str(err.value) == "trips.txt line 1 field service_id: required column missing"


def test_new_version_replaces_old_and_optional_files_may_be_absent(
    db_url: str, tmp_path: Path
) -> None:
    first = import_feed(db_url, REAL_FEED)
    files = feed_files()
    for optional in ("translations.txt", "feed_info.txt", "shapes.txt"):
        del files[optional]
    files["trips.txt"] = (
        "\n".join(
            ",".join(r.split(",")[:-1]) + "," if i else r
            for i, r in enumerate(files["trips.txt"].decode("utf-8-sig").split("\n"))
            if r
        )
    ).encode()
    second = import_feed(db_url, write_feed(files, tmp_path / "lean.zip"))
    assert second.id > first.id
    with psycopg.connect(db_url) as conn:
        current = current_version(conn)
        assert current is not None and current.id == second.id
        shapes = conn.execute(
            "SELECT count(*) FROM gtfs_shapes WHERE feed_version = gtfs_current_version()"
        ).fetchone()
        assert shapes == (0,)
        versions = conn.execute("SELECT count(*) FROM gtfs_feed_versions").fetchone()
        assert versions == (2,)  # the new one and the one before
    import_feed(db_url, REAL_FEED, force=True)


def test_zone_fare_follows_fare_rules(db_url: str) -> None:
    import_feed(db_url, REAL_FEED)
    prices = {r["fare_id"]: int(r["price"]) for r in _csv("fare_attributes.txt")}
    zone_of = {r["stop_id"]: r["zone_id"] for r in _csv("stops.txt")}
    stop_in_zone = {z: s for s, z in zone_of.items()}
    rules = _csv("fare_rules.txt")
    with psycopg.connect(db_url) as conn:
        # 中央前橋駅前 -> 前橋駅 on 新前橋駅西口線_A.
        assert zone_fare(conn, "新前橋駅西口線_A", "m003_01", "g035_01") == 100
        for rule in rules[:: max(1, len(rules) // 40)]:
            got = zone_fare(
                conn,
                rule["route_id"],
                stop_in_zone[rule["origin_id"]],
                stop_in_zone[rule["destination_id"]],
            )
            assert got == prices[rule["fare_id"]], rule
        # Reverse direction absent from the rules, unknown route, unknown stop: no fare.
        assert zone_fare(conn, "新前橋駅西口線_A", "g035_01", "g035_01") is None
        assert zone_fare(conn, "no-such-route", "m003_01", "g035_01") is None
        assert zone_fare(conn, "新前橋駅西口線_A", "m003_01", "nowhere") is None


@pytest.mark.anyio
async def test_zone_fare_async(db_url: str) -> None:
    import_feed(db_url, REAL_FEED)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        assert await zone_fare_async(conn, "新前橋駅西口線_B", "m003_01", "g035_01") == 100


def _with_jp_trip_columns(files: dict[str, bytes]) -> dict[str, bytes]:
    """trips.txt with the GTFS-JP extension columns and one column nobody knows."""
    rows = list(csv.reader(io.StringIO(files["trips.txt"].decode("utf-8-sig"))))
    header = [*rows[0], "jp_trip_desc", "jp_trip_desc_symbol", "jp_pattern_id", "x_depot"]
    body = [[*r, "県庁経由", "県", f"P{i % 3}", "north"] for i, r in enumerate(rows[1:]) if r]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    return {**files, "trips.txt": ("\ufeff" + out.getvalue()).encode()}


def test_gtfs_jp_trip_columns_are_kept_and_unknown_columns_warned(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "ja")  # the warnings: the process language
    path = write_feed(_with_jp_trip_columns(feed_files()), tmp_path / "jp.zip")
    version = import_feed(db_url, path)
    assert any("列 'x_depot' は GTFS にも GTFS-JP にもない" in w for w in version.warnings)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT jp_trip_desc, jp_trip_desc_symbol, jp_pattern_id FROM gtfs_trips"
            " WHERE feed_version = %s ORDER BY 3",
            [version.id],
        ).fetchall()
    assert rows == [("県庁経由", "県", "P0"), ("県庁経由", "県", "P1"), ("県庁経由", "県", "P2")]


@pytest.mark.parametrize(
    ("today", "expect"),
    [
        ("2026-12-01", "expired on 2026-03-31 (245 days ago)"),
        ("2026-03-20", "expires on 2026-03-31 (in 11 days)"),
        ("2025-03-01", "starts on 2025-04-01"),
        ("2025-10-01", None),
    ],
)
def test_expiry_warning(today: str, expect: str | None) -> None:
    got = expiry_warning(date(2025, 4, 1), date(2026, 3, 31), date.fromisoformat(today), lang="en")
    assert (got is None) if expect is None else (got is not None and expect in got)


def test_expiry_warning_in_japanese(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "ja")  # the language of the process, as the CLI's
    got = expiry_warning(date(2025, 4, 1), date(2026, 3, 31), date(2026, 12, 1))
    assert got is not None and "有効期限が 2026-03-31 に切れています（245 日前）" in got
    soon = expiry_warning(date(2025, 4, 1), date(2026, 3, 31), date(2026, 3, 20), lang="ja")
    assert soon is not None and "あと 11 日" in soon


def test_expired_feed_is_reported_by_import_status_and_readyz(
    db_url: str, settings: Settings
) -> None:
    """The bundled feed ended on 2026-03-31: import, `gtfs status` and /readyz say so."""
    version = import_feed(db_url, REAL_FEED, force=True)
    if date.today() <= date(2026, 3, 31) - timedelta(days=14):
        pytest.skip("the bundled feed is still valid today")
    assert any("2026-03-31" in w for w in version.warnings)
    env = {**os.environ, "MEBUKU_DATABASE_URL": db_url, "COLUMNS": "200", "MEBUKU_LANG": "ja"}
    out = subprocess.run(
        [sys.executable, "-m", "core.cli", "gtfs", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "注意：" in out.stderr and "2026-03-31" in out.stderr
    with TestClient(create_app(settings)) as client:
        body = client.get("/readyz").json()
    assert "2026-03-31" in body["warnings"]["gtfs"]

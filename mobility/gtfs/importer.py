"""Load a parsed feed as a new version with COPY and make it current atomically.

One transaction: insert the version row, COPY every table, flip ``is_current``, drop
versions older than the previous one (kept for a quick look back). A transaction-level
advisory lock serialises concurrent imports. A feed that fails validation never reaches
the database, so the current version stays in place.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from core.i18n import L_
from mobility.gtfs.freshness import expiry_warning
from mobility.gtfs.parser import ParsedFeed, read_feed

log = logging.getLogger(__name__)
JST = timezone(timedelta(hours=9), "Asia/Tokyo")
LOCK_KEY = int.from_bytes(hashlib.sha256(b"mebuku.gtfs.import").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class FeedVersion:
    """An imported GTFS feed, identified by its content hash."""

    id: int
    source: str
    sha256: str
    imported_at: datetime
    feed_start_date: date | None
    feed_end_date: date | None
    feed_version_name: str | None
    row_counts: dict[str, int]
    unchanged: bool = False  # True when the same file was already current
    warnings: tuple[str, ...] = ()  # columns not kept, expiry

    def expiry_warning(self, today: date | None = None) -> str | None:
        """Why this version should be replaced soon (expired, expiring), or None."""
        return expiry_warning(
            self.feed_start_date, self.feed_end_date, today or datetime.now(JST).date()
        )


_VERSION_COLS = (
    "id, source, sha256, imported_at, feed_start_date, feed_end_date, feed_version_name, row_counts"
)


def _version(row: tuple[Any, ...], unchanged: bool = False) -> FeedVersion:
    fields = dict(zip(_VERSION_COLS.replace(" ", "").split(","), row, strict=True))
    return FeedVersion(**fields, unchanged=unchanged)


def current_version(conn: psycopg.Connection) -> FeedVersion | None:
    """The feed version in use, or None before the first import."""
    row = conn.execute(
        f"SELECT {_VERSION_COLS} FROM gtfs_feed_versions WHERE is_current"
    ).fetchone()
    return _version(row) if row else None


def _service_span(feed: ParsedFeed) -> tuple[date | None, date | None, str | None]:
    info = feed.tables.get("feed_info.txt")
    if info and info.rows:
        row = dict(zip(info.columns, info.rows[0], strict=True))
        start, end, name = (
            row.get("feed_start_date"),
            row.get("feed_end_date"),
            row.get("feed_version_name"),
        )
        if isinstance(start, date) and isinstance(end, date):
            return start, end, name if isinstance(name, str) else None
    cal = feed.tables.get("calendar.txt")
    if cal and cal.rows:
        starts = [d for d in cal.column("start_date") if isinstance(d, date)]
        ends = [d for d in cal.column("end_date") if isinstance(d, date)]
        return min(starts), max(ends), None
    return None, None, None


def load(
    conn: psycopg.Connection, feed: ParsedFeed, source: str, *, force: bool = False
) -> FeedVersion:
    """Write ``feed`` as the new current version (conn must not be inside a transaction)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        current = current_version(conn)
        if current is not None and current.sha256 == feed.sha256 and not force:
            return FeedVersion(**{**current.__dict__, "unchanged": True})
        start, end, name = _service_span(feed)
        row = conn.execute(
            "INSERT INTO gtfs_feed_versions (source, sha256, feed_start_date, feed_end_date,"
            " feed_version_name, row_counts) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            [source, feed.sha256, start, end, name, Jsonb(feed.counts())],
        ).fetchone()
        assert row is not None
        version_id: int = row[0]
        with conn.cursor() as cur:
            for table in feed.tables.values():
                if not table.rows:
                    continue
                copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table.spec.table),
                    sql.SQL(", ").join(sql.Identifier(c) for c in ("feed_version", *table.columns)),
                )
                with cur.copy(copy) as cp:
                    for r in table.rows:
                        cp.write_row((version_id, *r))
        conn.execute("UPDATE gtfs_feed_versions SET is_current = false WHERE is_current")
        conn.execute("UPDATE gtfs_feed_versions SET is_current = true WHERE id = %s", [version_id])
        # Keep the new version and the one before it.
        conn.execute(
            "DELETE FROM gtfs_feed_versions WHERE id NOT IN"
            " (SELECT id FROM gtfs_feed_versions ORDER BY id DESC LIMIT 2)"
        )
        out = conn.execute(
            f"SELECT {_VERSION_COLS} FROM gtfs_feed_versions WHERE id = %s", [version_id]
        ).fetchone()
        assert out is not None
    log.info(L_("imported GTFS %s as version %s: %s"), source, version_id, feed.counts())
    version = _version(out)
    notes = [*feed.warnings]
    expiry = version.expiry_warning()
    if expiry:
        notes.append(expiry)
    for note in notes:
        log.warning("%s", note)
    return FeedVersion(**{**version.__dict__, "warnings": tuple(notes)})


def import_feed(
    url_or_conn: str | psycopg.Connection, path: Path | str, *, force: bool = False
) -> FeedVersion:
    """Parse, validate and load a feed zip; raises FeedError (nothing changed) if broken."""
    feed = read_feed(path)
    source = Path(path).name
    if isinstance(url_or_conn, str):
        with psycopg.connect(url_or_conn, autocommit=True) as conn:
            return load(conn, feed, source, force=force)
    return load(url_or_conn, feed, source, force=force)

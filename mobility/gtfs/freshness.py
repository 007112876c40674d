"""Is the timetable still valid? A feed past its end date silently breaks every
real-time feed (trip start dates match no service day), so operators must be told."""

from __future__ import annotations

from datetime import date

import psycopg

from core.i18n import Lang, gettext, process_lang

WARN_DAYS = 14


def expiry_warning(
    start: date | None,
    end: date | None,
    today: date,
    warn_days: int = WARN_DAYS,
    lang: Lang | None = None,
) -> str | None:
    """A one-line warning when the feed has expired, expires within ``warn_days`` or has
    not started yet; None when it is valid (or says nothing about its dates). In ``lang``,
    else the language of the process (the CLI's)."""
    lang = lang or process_lang()
    if end is not None and end < today:
        return gettext(
            "the GTFS feed expired on {end} ({days} days ago): "
            "import the operator's current feed with `mebuku gtfs import PATH.zip`",
            lang,
        ).format(end=end.isoformat(), days=(today - end).days)
    if start is not None and start > today:
        return gettext(
            "the GTFS feed starts on {start}: nothing runs before that day", lang
        ).format(start=start.isoformat())
    if end is not None and (end - today).days <= warn_days:
        return gettext(
            "the GTFS feed expires on {end} (in {days} days): ask the operator for the next feed",
            lang,
        ).format(end=end.isoformat(), days=(end - today).days)
    return None


_SPAN = "SELECT feed_start_date, feed_end_date FROM gtfs_feed_versions WHERE is_current"


def current_feed_span(conn: psycopg.Connection) -> tuple[date | None, date | None] | None:
    """(start, end) of the current feed version; None when no feed is imported."""
    row = conn.execute(_SPAN).fetchone()
    return (row[0], row[1]) if row else None


async def current_feed_warning(
    conn: psycopg.AsyncConnection, today: date, lang: Lang | None = None
) -> str | None:
    """The expiry warning of the current feed, for readiness probes (in ``lang``)."""
    cur = await conn.execute(_SPAN)
    row = await cur.fetchone()
    if row is None:
        return gettext(
            "no GTFS feed imported: run `mebuku gtfs import PATH.zip`", lang or process_lang()
        )
    return expiry_warning(row[0], row[1], today, lang=lang)

"""Route a message to its stream's parser: (topic, payload, received_at, limits) -> Rows or Reject.

Every input gives an answer; nothing raises, so a malformed message can never stall
the pipeline. Whatever a parser returns as rows, the database can store: strings are
Unicode scalar values without NUL, numbers are finite and inside their column's range,
times lie inside the window of :class:`ingest.fields.Limits`. The streams (topic, parser,
table) are in :mod:`ingest.streams`; payload rules in docs/schemas/*.json and
ingest/README.md.
"""

from __future__ import annotations

from datetime import datetime

from ingest.fields import DEFAULT_LIMITS, FieldError, Limits, text_problem
from ingest.rows import Parsed, Reject, Rows
from ingest.streams import match


def _segment(kind: str, v: str) -> str:
    if not v or len(v) > 64 or text_problem(v) is not None:
        raise FieldError("unknown_topic", f"{kind} must have 1..64 characters")
    return v


def parse_message(
    topic: str, payload: bytes, received_at: datetime, *, limits: Limits = DEFAULT_LIMITS
) -> Parsed:
    """Route by topic and parse; every failure becomes a Reject with a reason.

    ``received_at`` is "now" for the time window (the worker passes its receive time);
    ``limits`` come from settings (:meth:`Limits.from_settings`).
    """
    try:
        found = match(topic.split("/"))
        if found is None:
            return _reject("unknown_topic", f"no parser for topic {topic[:120]!r}")
        stream, id_levels = found
        ids = [_segment(name, v) for name, v in id_levels]
        return Rows(stream.table, stream.parser(ids, payload, received_at, limits))
    except FieldError as e:
        return _reject(e.code, e.detail)
    except RecursionError:
        return _reject("bad_json", "nested too deeply")


def _reject(code: str, detail: str) -> Reject:
    """A reject whose reason the database can store, whatever the input quoted."""
    if text_problem(detail) is not None:
        detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
        detail = detail.replace("\x00", "\\x00")
    return Reject(code, detail)

"""The API's access log never keeps query strings (they may carry personal data)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.cli import DropQueryString, lean_log_records
from api.screen import AccessLogFilter, masked_path
from core.logging import setup_logging
from mobility.fares.mynumber import mask


def test_access_log_drops_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/fares/quote?note=secret-value", "1.1", 200),
        None,
    )
    assert DropQueryString().filter(record)
    line = record.getMessage()
    assert "secret-value" not in line and "/v1/fares/quote" in line and "200" in line


# Clients, paths and their percent-encodings: digits (full-width ones too), separators and
# "%" enough that some lines hold 12-digit runs and some merely look close.
_TEXT = st.text(alphabet="0123456789０１２３-. /:%abcfAF?=", max_size=40)


@given(client=_TEXT, path=_TEXT)
@settings(max_examples=400, deadline=None)
def test_access_log_line_is_the_masked_client_and_path(client: str, path: str) -> None:
    """The filter writes exactly ``mask(client)`` and ``masked_path(path)`` (no query), also
    where it skips the work for text that cannot hold a number."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (client, "GET", path, "1.1", 200),
        None,
    )
    assert AccessLogFilter().filter(record)
    assert record.args == (mask(client), "GET", masked_path(path.split("?")[0]), "1.1", 200)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_lean_log_records_print_the_same_lines(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The serving process's lean records (no caller frame, thread or process looked up)
    print exactly the lines mebuku's formatters printed before, access log included."""
    for switch in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, switch, getattr(logging, switch))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    # As a fresh serving process has them: an earlier test in this worker may have run
    # uvicorn (whose logging config disables, or stops propagating, its access logger).
    for name in ("uvicorn", "uvicorn.access", "api.app"):
        lg = logging.getLogger(name)
        for attr, value in (("disabled", False), ("propagate", True), ("handlers", [])):
            monkeypatch.setattr(lg, attr, value)
        monkeypatch.setattr(lg, "level", logging.NOTSET)
    setup_logging("INFO", fmt)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]

    def lines() -> list[str]:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/v1/me/subsidy", "1.1", 200
        )
        logging.getLogger("api.app").warning("a warning with %s", "arguments")
        out = stream.getvalue().splitlines()
        stream.seek(0)
        stream.truncate()
        if fmt == "json":  # everything but the time
            return [json.dumps({**json.loads(o), "ts": None}, sort_keys=True) for o in out]
        return [o.split(" ", 1)[1] for o in out]

    before = lines()
    assert lean_log_records()
    assert lines() == before and len(before) == 2
    assert "uvicorn.access" in before[0] and "arguments" in before[1]


def test_lean_log_records_only_when_no_formatter_prints_the_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for switch in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, switch, getattr(logging, switch))
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(asctime)s %(funcName)s:%(lineno)d %(message)s"))
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    assert not lean_log_records()
    assert logging.logThreads and logging._srcfile is not None

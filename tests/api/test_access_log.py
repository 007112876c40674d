"""The API's access log never keeps query strings (they may carry personal data)."""

from __future__ import annotations

import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from api.cli import DropQueryString
from api.screen import AccessLogFilter, masked_path
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

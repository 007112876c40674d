"""The API's access log never keeps query strings (they may carry personal data)."""

from __future__ import annotations

import logging

from api.cli import DropQueryString


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

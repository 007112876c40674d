"""Request screening shared by the HTTP endpoints (refuse, never store or log)."""

from __future__ import annotations

from typing import Any

from core.web import ProblemError
from mobility.fares.mynumber import find_my_number_fields, has_twelve_digit_run

PROBLEM = "individual-number-refused"
TITLE = "Individual Numbers are not accepted"


def refuse_my_number(payload: Any) -> None:
    """422 when any field holds what looks like an Individual Number (value not echoed)."""
    fields = find_my_number_fields(payload)
    if fields:
        raise ProblemError(
            422,
            PROBLEM,
            TITLE,
            "This service never accepts the 12-digit Individual Number (My Number). Remove it;"
            " sign in with the card's certificate instead.",
            fields=sorted(set(fields)),
        )


def refuse_twelve_digit_ids(**identifiers: str | None) -> None:
    """422 when an identifier field holds any 12-digit run (it could be a My Number)."""
    bad = sorted(k for k, v in identifiers.items() if v and has_twelve_digit_run(v))
    if bad:
        raise ProblemError(
            422,
            PROBLEM,
            TITLE,
            "Identifier fields may not contain a 12-digit number; use another identifier.",
            fields=bad,
        )

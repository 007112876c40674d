"""The Individual Number check digit and the request screen (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.web import ProblemError
from mobility.fares.guard import refuse_my_number, refuse_twelve_digit_ids
from mobility.fares.mynumber import (
    check_digit,
    find_my_number_fields,
    is_valid_my_number,
    looks_like_my_number,
)


def synthetic(base11: str) -> str:
    """A synthetic number with a valid check digit (built at run time, never committed)."""
    return base11 + str(check_digit(base11))


def test_check_digit_by_hand() -> None:
    # Digits from the right P1..P11 = 1,0,9,8,7,6,5,4,3,2,1 with weights 2..7, 2..6:
    # 2 + 0 + 36 + 40 + 42 + 42 + 10 + 12 + 12 + 10 + 6 = 212; 212 % 11 = 3 -> 11 - 3 = 8.
    assert check_digit("12345678901") == 8
    # Remainders 0 and 1 give 0.
    assert check_digit("00000000000") == 0


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_exactly_one_check_digit_is_valid(base: str) -> None:
    valid = [d for d in range(10) if is_valid_my_number(base + str(d))]
    assert valid == [check_digit(base)]


def test_screen_finds_numbers_in_nested_fields_and_groupings() -> None:
    n = synthetic("98765432109")
    grouped = f"{n[:4]}-{n[4:8]} {n[8:]}"
    payload = {"a": "ok", "b": [{"c": f"my number is {grouped}"}], "d": int(n)}
    assert sorted(find_my_number_fields(payload)) == ["b[0].c", "d"]
    assert not looks_like_my_number(n[:11] + str((int(n[11]) + 1) % 10))
    assert not looks_like_my_number("1" + n)  # part of a 13-digit run: not a My Number


def test_refusal_does_not_echo_the_value() -> None:
    n = synthetic("11122233344")
    with pytest.raises(ProblemError) as e:
        refuse_my_number({"note": n})
    assert e.value.status == 422
    assert n not in repr(e.value.__dict__)
    with pytest.raises(ProblemError):
        refuse_twelve_digit_ids(record_id="R" + "123456789012")  # any 12-digit run
    refuse_twelve_digit_ids(record_id="T-2026-000123")

"""Keeping the 12-digit Individual Number (My Number) out of the platform.

The My Number Act forbids collecting the number outside its listed purposes, hashed or not,
so requests are screened before anything is stored or logged. A value is refused when it
holds a run of exactly 12 digits (ignoring spaces and hyphens between digits) whose last
digit is a valid My Number check digit; identifier fields refuse every 12-digit run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# 12 digits, optionally grouped as 4-4-4 with spaces or hyphens, not part of a longer run.
_RUN = re.compile(r"(?<![0-9])(\d{4})[ \-]?(\d{4})[ \-]?(\d{4})(?![0-9])")


def check_digit(first11: str) -> int:
    """The official check digit (総務省令 第5条) of an 11-digit base number.

    Weights Q_n are n+1 for n = 1..6 and n-5 for n = 7..11, where P_n is the n-th digit
    counted from the right; the digit is 11 - (sum mod 11), or 0 when the remainder is 0 or 1.
    """
    if len(first11) != 11 or not first11.isdigit():
        raise ValueError("need exactly 11 digits")
    total = 0
    for n, ch in enumerate(reversed(first11), start=1):
        q = n + 1 if n <= 6 else n - 5
        total += int(ch) * q
    r = total % 11
    return 0 if r <= 1 else 11 - r


def is_valid_my_number(digits: str) -> bool:
    return len(digits) == 12 and digits.isdigit() and check_digit(digits[:11]) == int(digits[11])


def twelve_digit_runs(text: str) -> Iterator[str]:
    for m in _RUN.finditer(text):
        yield m.group(1) + m.group(2) + m.group(3)


def looks_like_my_number(text: str) -> bool:
    return any(is_valid_my_number(run) for run in twelve_digit_runs(text))


def find_my_number_fields(value: Any, path: str = "") -> list[str]:
    """Paths (``riders[0].card``) of string fields in a JSON-like value that hold one."""
    found: list[str] = []
    if isinstance(value, str):
        if looks_like_my_number(value):
            found.append(path or "$")
    elif isinstance(value, int) and not isinstance(value, bool):
        if looks_like_my_number(str(value)):
            found.append(path or "$")
    elif isinstance(value, dict):
        for k, v in value.items():
            found.extend(find_my_number_fields(v, f"{path}.{k}" if path else str(k)))
            if isinstance(k, str) and looks_like_my_number(k):
                found.append(f"{path}.<key>" if path else "<key>")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found.extend(find_my_number_fields(v, f"{path}[{i}]"))
    return found


def has_twelve_digit_run(text: str) -> bool:
    """For identifier fields: any 12-digit run is refused, check digit or not."""
    return any(True for _ in twelve_digit_runs(text))

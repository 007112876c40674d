"""Keeping the 12-digit Individual Number (My Number) out of the platform.

The My Number Act forbids collecting the number outside its listed purposes, hashed or not,
so requests are screened before anything is stored or logged (``api/screen.py`` runs this
on every byte of every request). The rule, on text after :func:`normalise` (NFKC, so
full-width digits and separators become ASCII; any Unicode decimal digit counts; invisible
format characters are dropped):

* a *chain* is digit groups joined by separators (1 to 3 of: whitespace, ``- . / _ , +``,
  any dash, ``・ 。 、``), so ``1234.5678.9018``, ``1234 - 5678 - 9018`` and
  ``１２３４－５６７８－９０１８`` are chains;
* a *candidate* is a group of exactly 12 digits, a whole chain of exactly 12 digits, or
  three consecutive 4-digit groups inside a longer chain (the usual 4-4-4 spelling);
* a candidate whose last digit is the valid My Number check digit is refused. Groups that
  are part of a longer digit run (13-digit millisecond times, 16-digit card IDs) are not.

Identifier fields (record, vehicle and operator ids) refuse every 12-digit group or 4-4-4
spelling whatever its check digit (:func:`has_twelve_digit_run`); free text only refuses
a valid check digit, so that one number in ten is not refused by chance.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

# Separators between digit groups (after NFKC): whitespace, ASCII punctuation used to group
# numbers, every dash (Unicode category Pd is added at run time), Japanese dots and commas.
_SEPARATORS = " \t\r\n\v\f-./_,+\\'・。、ー−"
_SEP_CLASS = "".join(
    re.escape(c)
    for c in sorted(
        set(_SEPARATORS)
        | {chr(i) for i in range(0x2000, 0x2070) if unicodedata.category(chr(i)) == "Pd"}
        | {"\u00a0", "\u3000", "\u30fc", "\uff70", "\u2212", "\ufe63", "\uff0d"}
    )
)
# Whole chains holding 12 or more digits (digits with at most 3 separators between each
# two), matched in C; possessive, so each match is maximal and nothing backtracks.
_LONG_CHAIN = re.compile(rf"[0-9](?:[{_SEP_CLASS}]{{0,3}}+[0-9]){{11,}}+")
_GROUP = re.compile(r"[0-9]+")
# 12 digits, optionally grouped as 4-4-4 with spaces or hyphens, not part of a longer run.
_RUN = re.compile(r"(?<![0-9])(\d{4})[ \-]?(\d{4})[ \-]?(\d{4})(?![0-9])")
_DIGITS = {
    i: str(unicodedata.decimal(chr(i)))
    for i in range(0x80, 0x20000)  # every decimal digit lies below U+20000
    if unicodedata.category(chr(i)) == "Nd"
}


def _char_class(codes: list[int]) -> str:
    """A regex character class of these code points, as ranges (fast to match)."""
    out: list[str] = []
    start = prev = codes[0]
    for c in [*codes[1:], -2]:
        if c != prev + 1:
            out.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = c
        prev = c
    return "[" + "".join(out) + "]"


_FORMAT_CODES = [i for i in range(0x80, 0x20000) if unicodedata.category(chr(i)) == "Cf"]
_FORMAT_CHARS = re.compile(_char_class(_FORMAT_CODES) + "+")
# Anything normalise() must rewrite after NFKC: invisible format characters, other digits.
_NEEDS_REWRITE = re.compile(_char_class(sorted([*_FORMAT_CODES, *_DIGITS])))


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
    """Whether ``digits`` is a well-formed Individual Number (check digit included), so text that
    carries one can be refused before it is stored or logged."""
    return (
        len(digits) == 12
        and digits.isascii()
        and digits.isdigit()
        and check_digit(digits[:11]) == int(digits[11])
    )


def normalise(text: str) -> str:
    """NFKC, every Unicode decimal digit as ASCII, invisible format characters removed."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return text
    if _NEEDS_REWRITE.search(text) is None:
        return text
    return _FORMAT_CHARS.sub("", text).translate(_DIGITS)


def candidates(text: str) -> Iterator[str]:
    """12-digit candidates (see the module docstring) in already normalised text."""
    for chain in _LONG_CHAIN.findall(text):
        groups = _GROUP.findall(chain)
        if sum(map(len, groups)) == 12:
            yield "".join(groups)
            continue
        for i, g in enumerate(groups):
            if len(g) == 12:
                yield g
            if (
                len(g) == 4
                and i + 2 < len(groups)
                and len(groups[i + 1]) == len(groups[i + 2]) == 4
            ):
                yield g + groups[i + 1] + groups[i + 2]


def twelve_digit_runs(text: str) -> Iterator[str]:
    """Every 12-digit candidate in ``text`` (normalised first), check digit or not."""
    return candidates(normalise(text))


def looks_like_my_number(text: str) -> bool:
    """Whether free text holds a valid Individual Number anywhere."""
    return any(is_valid_my_number(run) for run in twelve_digit_runs(text))


def number_looks_like_my_number(value: int | float | Decimal) -> bool:
    """A JSON number: 123456789018, 123456789018.0 and 1.23456789018e11 all count."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 10**11 <= abs(value) < 10**12 and is_valid_my_number(str(abs(value)))
    d = Decimal(value) if isinstance(value, float) else value
    # adjusted() is the power of ten of the first digit: 11 for every 12-digit number
    if not d.is_finite() or d.adjusted() != 11 or d != d.to_integral_value():
        return False
    return number_looks_like_my_number(int(d))


def mask(text: str) -> str:
    """``text`` normalised with every chain of 12 or more digits replaced by ``*``.

    For log lines: stronger than the refusal rule (any check digit, any length >= 12).
    """

    def star(m: re.Match[str]) -> str:
        return _GROUP.sub(lambda g: "*" * len(g.group()), m.group())

    return _LONG_CHAIN.sub(star, normalise(text))


def find_my_number_fields(value: Any, path: str = "") -> list[str]:
    """Paths (``riders[0].card``) of fields in a JSON-like value that hold one.

    Besides dicts and lists, a list of ``(key, value)`` pairs (json's
    ``object_pairs_hook``) is walked as an object, so duplicate keys are all seen. Walked
    without recursion (no depth limit to hit) and paths are only formatted for hits, so a
    1 MiB array of numbers costs little.
    """
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        v, where = stack.pop()
        if isinstance(v, str):
            if _may_hold(v) and looks_like_my_number(v):
                found.append(where)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float | Decimal):
            if number_looks_like_my_number(v):
                found.append(where)
        elif isinstance(v, dict | _Pairs):
            for k, item in v.items() if isinstance(v, dict) else v:
                stack.append((item, (*where, str(k))))
                if isinstance(k, str) and _may_hold(k) and looks_like_my_number(k):
                    found.append((*where, _KEY))
        elif isinstance(v, list | tuple):
            stack.extend((item, (*where, i)) for i, item in enumerate(v))
    return sorted({_format_path(path, where) for where in found})


_KEY = object()


def _may_hold(text: str) -> bool:
    """False for ASCII shorter than 12 characters (cannot hold 12 digits): not searched."""
    return len(text) >= 12 or not text.isascii()


def _format_path(prefix: str, where: tuple[Any, ...]) -> str:
    out = prefix
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = "<key>" if part is _KEY else part
            out += f".{name}" if out else name
    return out or "$"


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as all its ``(key, value)`` pairs, duplicates included."""


def json_pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    """``object_pairs_hook`` for :func:`json.loads` that keeps duplicate keys."""
    return _Pairs(pairs)


def has_twelve_digit_run(text: str) -> bool:
    """For identifier fields: any 12-digit run or 4-4-4 spelling, check digit or not.

    Stricter than free text (no check digit needed) but narrower in grouping, so ids built
    from a date and a sequence (``B-20261120-0001``) stay usable.
    """
    return _RUN.search(normalise(text)) is not None

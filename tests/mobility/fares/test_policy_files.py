"""Fare policy files are validated: a misspelled or unknown key, a value out of range or an
unknown scheme is an error naming the file and the key, never silently ignored."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from importlib import resources
from typing import Any

import pytest

from mobility.fares.policy import book_from_dicts, load_policies


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """The messages these tests read are the English ones (Japanese: its own test)."""
    monkeypatch.setenv("MEBUKU_LANG", "en")


def shipped(name: str) -> dict[str, Any]:
    text = (resources.files("mobility.fares") / "policies" / name).read_text(encoding="utf-8")
    return tomllib.loads(text)


def test_the_shipped_policies_are_valid() -> None:
    book = load_policies()
    assert {p.version for p in book.mytaku} == {"mytaku-2016-01", "mytaku-2022-04"}
    assert {p.version for p in book.bus} == {"bus-2024-06", "bus-2024-12"}
    assert book.mytaku_at(date(2025, 1, 1)).rides_per_fiscal_year == 70


def test_a_misspelled_key_names_the_file_and_the_key() -> None:
    doc = shipped("mytaku-2022-04.toml")
    doc["limits"]["rides_per_fiscal_yaer"] = doc["limits"].pop("rides_per_fiscal_year")
    with pytest.raises(ValueError) as e:
        book_from_dicts([doc], ["mytaku-2022-04.toml"])
    msg = str(e.value)
    assert msg.startswith("mytaku-2022-04.toml: ")
    assert "limits.rides_per_fiscal_yaer" in msg  # the unknown key
    assert "limits.rides_per_fiscal_year" in msg  # and the one it should have been


def test_an_unknown_top_level_key_in_a_bus_policy_is_refused() -> None:
    doc = shipped("bus-2024-12.toml")
    doc["participating_operator"] = ["typo"]
    with pytest.raises(ValueError, match=r"^bus-2024-12\.toml: participating_operator: Extra"):
        book_from_dicts([doc], ["bus-2024-12.toml"])


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["subsidy"].update(alone_rate_percent=150), "subsidy.alone_rate_percent"),
        (lambda d: d["cards"].update(max_active_per_resident=0), "cards.max_active_per_resident"),
        (lambda d: d["hours"].update(start="7 o'clock"), "hours.start"),
        (lambda d: d.update(scheme="tram"), "(file)"),
    ],
)
def test_bad_values_are_refused_with_their_key(edit: Any, key: str) -> None:
    doc = shipped("mytaku-2022-04.toml")
    edit(doc)
    with pytest.raises(ValueError, match=rf"^x\.toml: {re.escape(key)}: "):
        book_from_dicts([doc], ["x.toml"])


def test_policy_errors_are_in_the_language_of_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic's refusals said again in Japanese by error type, each with its key."""
    monkeypatch.setenv("MEBUKU_LANG", "ja")
    doc = shipped("mytaku-2022-04.toml")
    doc["limits"]["rides_per_fiscal_yaer"] = doc["limits"].pop("rides_per_fiscal_year")
    doc["subsidy"]["alone_rate_percent"] = 150
    doc["hours"]["start"] = 7
    with pytest.raises(ValueError) as e:
        book_from_dicts([doc], ["x.toml"])
    msg = str(e.value)
    assert msg.startswith("x.toml: ")
    assert "limits.rides_per_fiscal_year：値が必要です" in msg
    assert "limits.rides_per_fiscal_yaer：定義にない項目です" in msg
    assert "subsidy.alone_rate_percent：100 以下にしてください" in msg
    assert "hours.start：文字列ではありません" in msg
    assert "Field required" not in msg and "Extra inputs" not in msg
    tram = shipped("mytaku-2022-04.toml")
    tram["scheme"] = "tram"
    with pytest.raises(ValueError, match=r"^x\.toml: （ファイル全体）："):
        book_from_dicts([tram], ["x.toml"])

"""CLI tables: Japanese text wraps and is never cut; piped output is not 80 columns."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from core import tables

STOP = "高崎市循環バス　ぐるりん　群馬の森線・群馬県立近代美術館前・前橋駅北口行き"


def test_narrow_table_folds_japanese_text_without_cutting_it() -> None:
    t = tables.table("stop", "route", "note")
    t.add_row(STOP, "前橋高崎線_A", "x" * 60)
    buf = io.StringIO()
    Console(file=buf, width=40).print(t)
    text = buf.getvalue()
    assert "…" not in text
    joined = "".join(
        line.replace("│", "").replace("┃", "").strip().split(" ")[0] for line in text.splitlines()
    )
    for part in ("高崎市循環バス", "群馬県立近代美術館前", "前橋駅北口行き"):
        assert part in joined.replace(" ", "").replace("　", "")


def test_piped_console_is_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert tables.console().width == tables.PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "132")
    assert tables.console().width == 132

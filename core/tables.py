"""CLI tables that fit Japanese text: cells wrap (fold), never cut with an ellipsis, and
output that is piped or redirected is not squeezed into 80 columns."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

PIPED_WIDTH = 200  # columns assumed when output is not a terminal and COLUMNS is unset


def _width(stream: Any) -> int | None:
    if stream.isatty():
        return None  # the terminal's own width
    cols = os.environ.get("COLUMNS", "")
    return int(cols) if cols.isdigit() and int(cols) > 0 else PIPED_WIDTH


def console(stderr: bool = False) -> Console:
    """A console for tables: the terminal's width, or a wide one when piped."""
    return Console(stderr=stderr, width=_width(sys.stderr if stderr else sys.stdout))


def table(*headers: str, **kwargs: Any) -> Table:
    """A :class:`rich.table.Table` whose every column folds long text onto more lines."""
    t = Table(*headers, **kwargs)
    for c in t.columns:
        c.overflow = "fold"
        c.no_wrap = False
    return t

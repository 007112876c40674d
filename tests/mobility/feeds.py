"""Helpers to build variants of the real Gunma Chuo feed for import tests."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from core.resources import default_gtfs

REAL_FEED = default_gtfs()


def feed_files(path: Path = REAL_FEED) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_feed(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def edit_line(
    files: dict[str, bytes], name: str, line_no: int, edit: Callable[[str], str]
) -> dict[str, bytes]:
    """Apply ``edit`` to one line (1 = header) of a file, keeping the BOM."""
    text = files[name].decode("utf-8-sig")
    lines = text.split("\n")
    lines[line_no - 1] = edit(lines[line_no - 1])
    out = dict(files)
    out[name] = ("\ufeff" + "\n".join(lines)).encode()
    return out

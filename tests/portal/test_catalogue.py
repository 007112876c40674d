"""Every string the portal shows has a Japanese entry (templates and Python alike)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from core import i18n

PORTAL = Path(__file__).resolve().parents[2] / "portal"
KEYWORDS = {"_": None, "N_": None, "gettext": None}


def portal_msgids() -> set[str]:
    ids: set[str] = set()
    for path in sorted(PORTAL.glob("*.py")):
        found = extract_from_file("python", path, keywords=KEYWORDS, comment_tags=())
        ids |= {m[1] for m in found if isinstance(m[1], str)}
    for path in sorted((PORTAL / "templates").glob("*.html")):
        with path.open("rb") as f:
            ids |= {m[2] for m in babel_extract(f, list(KEYWORDS), [], {}) if isinstance(m[2], str)}
    return ids


def test_every_portal_string_has_a_japanese_entry() -> None:
    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    ids = portal_msgids()
    assert len(ids) > 150  # the extraction sees the templates at all
    missing = sorted(m for m in ids if not (ja.get(m) and ja[m].string and not ja[m].fuzzy))
    assert missing == [], f"no Japanese entry in core/locale/ja for: {missing}"


def test_easy_japanese_entries_are_portal_strings() -> None:
    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    easy = {m.id for m in ja if m.context == "easy"}
    assert len(easy) >= 20
    assert easy <= portal_msgids()

"""Every user-visible string of the opendata package has a Japanese catalogue entry, and
the published names (CSV headers, dataset titles, dashboards) come out in Japanese."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from core import i18n
from opendata.dashboard import dashboards
from opendata.datasets import DATASETS

REPO = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "N_": None, "gettext": None}


def test_every_opendata_string_has_a_japanese_entry() -> None:
    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    ids: set[str] = set()
    for path in sorted((REPO / "opendata").glob("*.py")):
        found = extract_from_file("python", path, keywords=KEYWORDS, comment_tags=())
        ids |= {m[1] for m in found if isinstance(m[1], str)}
    assert len(ids) > 100
    missing = sorted(m for m in ids if not (ja.get(m) and ja[m].string and not ja[m].fuzzy))
    assert missing == [], f"no Japanese entry in core/locale/ja for: {missing}"


def test_headers_titles_and_dashboards_are_japanese() -> None:
    for ds in DATASETS:
        assert i18n.gettext(ds.title) != ds.title, ds.id
        for c in ds.columns:
            assert c.header("ja") != c.name, (ds.id, c.name)
            assert c.header("en") == c.title
    ((folder, board),) = dashboards()
    assert folder == "city" and board["title"] == "EBPM：交通とローカル5Gのエビデンス"
    assert all(not p["title"].isascii() for p in board["panels"])
    for p in board["panels"]:
        for alias in re.findall(r'AS "([^"]+)"', p["targets"][0]["rawSql"]):
            assert not alias.isascii() or alias == "KPI", (p["title"], alias)
    english = dashboards("en")[0][1]
    assert english["title"] == "EBPM: mobility and local 5G for policy"

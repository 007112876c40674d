"""The human page of /open/ (pure): what the latest release holds, in the reader's
language (Japanese first), with download links, data dictionaries and the licence."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from core.i18n import N_, Lang, gettext
from opendata.catalogue import CATALOGUE_DESCRIPTION, CATALOGUE_TITLE, PUBLISHER_NAME
from opendata.datasets import BY_ID

DICTIONARY = N_("Data dictionary")
SUPPRESSED_NOTE = N_("Small groups suppressed")
PUBLISHER = N_("Publisher")
RELEASE = N_("Release")
LICENCE = N_("Licence")
CATALOGUE_LINK = N_("Catalogue (DCAT, JSON-LD)")
DATASET = N_("Dataset")
FILES = N_("Files")
ROWS = N_("Rows")

STYLE = """
body{font-family:"Noto Sans CJK JP","Hiragino Sans",sans-serif;margin:2rem auto;max-width:60rem;
color:#222;line-height:1.6;padding:0 1rem}
h1{font-size:1.6rem;border-bottom:3px solid #2a7d4f;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{border-bottom:1px solid #ddd;padding:.5rem;text-align:left;vertical-align:top}
th{background:#f3f7f4;white-space:nowrap}
.note{background:#fff8e5;padding:.8rem;border-left:4px solid #e0a800}
small{color:#666}a{color:#1a5fb4}
@media (max-width:40em){
body{margin:1rem auto}
table,tbody,tr,td{display:block;width:auto}
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
tr{border-bottom:1px solid #ddd;padding:.6rem 0}
td{border:0;padding:.15rem 0}
td a{overflow-wrap:anywhere}
td[data-label]::before{content:attr(data-label) ": ";font-weight:bold}
td[data-label]::before{content:attr(data-label) ": " / ""}
}
"""
# On a phone (WCAG 1.4.10 reflow) each dataset is one block: the rows keep their table
# roles (explicit ARIA roles, which display:block would otherwise drop) and each cell
# shows its column's name, hidden from screen readers, which announce the header.


def _rows(f: Mapping[str, Any]) -> str:
    return f"{int(f['rows']):,}" if f.get("schema") else "—"


def render_index(meta: Mapping[str, Any], lang: Lang = "ja") -> str:
    """The /open/ page for a release's metadata.json."""
    _ = lambda m: escape(gettext(m, lang))  # noqa: E731 - a local shorthand
    rid = escape(str(meta["release_id"]))
    rows = []
    for f in meta["files"]:
        ds = BY_ID.get(f["dataset"])
        if ds is None:
            continue
        link = f'<a href="latest/{escape(f["file"])}">{escape(f["file"])}</a>'
        schema = (
            f'<br><a href="latest/{escape(f["schema"])}">{_(DICTIONARY)}</a>'
            if f.get("schema")
            else ""
        )
        protected = f"<br><small>{_(SUPPRESSED_NOTE)}</small>" if ds.protected else ""
        rows.append(
            f'<tr role="row"><td role="cell"><strong>{_(ds.title)}</strong><br>'
            f"<small>{_(ds.description)}</small></td>"
            f'<td role="cell" data-label="{_(FILES)}">{link}{schema}{protected}</td>'
            f'<td role="cell" data-label="{_(ROWS)}">{_rows(f)}</td></tr>'
        )
    loss = meta.get("privacy_loss", {})
    note = _(
        N_(
            "No figure describes fewer than {k} persons: small cells and the cells that "
            "would reveal them are left empty (秘匿), the same way in every release."
        )
    ).format(k=int(meta["k"]))
    eps = float(loss.get("epsilon_spent", 0))
    if eps > 0:
        note += " " + _(N_("Resident counts carry random noise (privacy loss ε = {eps}).")).format(
            eps=f"{eps:g}"
        )
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_(CATALOGUE_TITLE)}</title>
<link rel="alternate" type="application/ld+json" href="catalog.jsonld">
<style>{STYLE}</style></head><body>
<h1>{_(CATALOGUE_TITLE)}</h1>
<p>{_(CATALOGUE_DESCRIPTION)}</p>
<p>{_(PUBLISHER)}: {_(PUBLISHER_NAME)} ・ {_(RELEASE)}: <code>{rid}</code> ・
{_(LICENCE)}: <a href="https://creativecommons.org/licenses/by/4.0/deed.ja">CC BY 4.0</a> ・
<a href="catalog.jsonld">{_(CATALOGUE_LINK)}</a></p>
<p class="note">{note}</p>
<table role="table"><thead role="rowgroup"><tr role="row">
<th role="columnheader" scope="col">{_(DATASET)}</th>
<th role="columnheader" scope="col">{_(FILES)}</th>
<th role="columnheader" scope="col">{_(ROWS)}</th></tr></thead><tbody role="rowgroup">
{"".join(rows)}
</tbody></table></body></html>
"""

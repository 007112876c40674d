"""Collect every package's dashboards and write them as the JSON Grafana provisions.

``grafana/dashboards/<folder>/<uid>.json``: folders are audiences (operators, council,
city), which the dashboard provider turns into Grafana folders. Output is deterministic
(sorted keys), so a test can regenerate and compare with the committed files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core import plugins
from core.grafana import SCHEMA_VERSION

FOLDERS = ("operators", "council", "city")
DEFAULT_OUT = Path("grafana") / "dashboards"  # relative to the checkout (cwd): works from a wheel

Dashboard = dict[str, Any]


def collect() -> list[tuple[str, Dashboard]]:
    """(folder, dashboard) from every ``mebuku.dashboards`` entry point, in name order (the
    platform's own last); one that fails to import raises PluginError naming it."""
    found: list[tuple[str, Dashboard]] = []
    for p in plugins.load("mebuku.dashboards"):
        found.extend(p.obj())
    validate(found)
    return found


def validate(dashboards: list[tuple[str, Dashboard]]) -> None:
    """Refuse what Grafana would reject or silently merge (duplicate uids, bad folders)."""
    seen: dict[str, str] = {}
    problems: list[str] = []
    for folder, d in dashboards:
        uid = d.get("uid", "")
        if folder not in FOLDERS:
            problems.append(f"{uid}: folder {folder!r} is not one of {FOLDERS}")
        if not uid or len(uid) > 40:
            problems.append(f"{uid!r}: uid must be 1..40 characters")
        if uid in seen:
            problems.append(f"{uid}: uid used twice ({seen[uid]}, {d.get('title')})")
        seen[uid] = str(d.get("title"))
        if d.get("schemaVersion") != SCHEMA_VERSION:
            problems.append(f"{uid}: schemaVersion must be {SCHEMA_VERSION}")
        if not d.get("title") or not d.get("tags"):
            problems.append(f"{uid}: needs a title and tags")
        ids = [p.get("id") for p in iter_panels(d)]
        if len(ids) != len(set(ids)):
            problems.append(f"{uid}: panel ids repeat")
    if problems:
        raise ValueError("invalid dashboards: " + "; ".join(problems))


def iter_panels(d: Dashboard) -> list[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    out: list[dict[str, Any]] = []
    for p in d.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def render(d: Dashboard) -> str:
    return json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files(dashboards: list[tuple[str, Dashboard]]) -> dict[str, str]:
    """Relative path -> file content."""
    return {f"{folder}/{d['uid']}.json": render(d) for folder, d in dashboards}


def write(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write the dashboards; remove generated files whose dashboard no longer exists."""
    files = expected_files(collect())
    written: list[Path] = []
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for old in out_dir.glob("*/*.json"):
        if old.relative_to(out_dir).as_posix() not in files:
            old.unlink()
    return written


def differences(out_dir: Path = DEFAULT_OUT) -> list[str]:
    """What is out of date on disk (missing, changed, stale), empty when current."""
    files = expected_files(collect())
    diffs: list[str] = []
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        if not path.exists():
            diffs.append(f"missing {rel}")
        elif path.read_text(encoding="utf-8") != text:
            diffs.append(f"changed {rel}")
    for old in sorted(out_dir.glob("*/*.json")):
        rel = old.relative_to(out_dir).as_posix()
        if rel not in files:
            diffs.append(f"stale {rel}")
    return diffs

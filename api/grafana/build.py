"""Collect every package's dashboards and write them as the JSON Grafana provisions.

``grafana/dashboards/<folder>/<uid>.json``: folders are audiences (operators, council,
city), which the dashboard providers (grafana/provisioning/dashboards/mebuku.yaml) turn
into Grafana folders. Every dashboard is built twice from the same code: Japanese (the
default: uid and folder as declared) and English (uid ``<uid>-en`` in folder
``<folder>-en``); each links to its other language. Output is deterministic (sorted
keys), so a test can regenerate and compare with the committed files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core import plugins
from core.grafana import SCHEMA_VERSION
from core.i18n import DEFAULT_LANG, LANGS, N_, Lang, cli_gettext, gettext

FOLDERS = ("operators", "council", "city")
PROVISIONING = (
    Path("grafana") / "provisioning"
)  # relative to the checkout (cwd): works from a wheel
MOUNT = "/var/lib/grafana/dashboards"  # where docker-compose.yml mounts grafana/dashboards
# Folder titles people see in Grafana (the directory names stay ASCII).
FOLDER_TITLES: dict[str, str] = {
    "operators": N_("Bus and taxi operators"),
    "council": N_("Local 5G council"),
    "city": N_("Maebashi City (restricted)"),
}
DEFAULT_OUT = Path("grafana") / "dashboards"  # relative to the checkout (cwd): works from a wheel

Dashboard = dict[str, Any]


def folder_name(folder: str, lang: Lang) -> str:
    """The directory and Grafana folder key of an audience in a language."""
    return folder if lang == DEFAULT_LANG else f"{folder}-{lang}"


def audience(folder: str) -> tuple[str, Lang]:
    """(audience, language) of a folder key: ``city-en`` -> (city, en)."""
    base, _sep, tag = folder.partition("-")
    lang = next((lang for lang in LANGS if lang == tag), DEFAULT_LANG)
    return base, lang


def folder_title(folder: str) -> str:
    """The folder's title in its own language (English ones say so)."""
    base, lang = audience(folder)
    title = gettext(FOLDER_TITLES.get(base, base), lang)
    return title if lang == DEFAULT_LANG else f"{title} (English)"


def uid_for(uid: str, lang: Lang) -> str:
    """The uid of a dashboard's copy in ``lang`` (Japanese keeps the declared uid)."""
    return uid if lang == DEFAULT_LANG else f"{uid}-{lang}"


def localised(d: Dashboard, lang: Lang) -> Dashboard:
    """The dashboard with its language's uid, a language tag and a link to the other
    language's copy (same uid family)."""
    base = d["uid"]
    other: Lang = "en" if lang == "ja" else "ja"
    link_title = {"ja": N_("English version"), "en": N_("Japanese version")}[lang]
    out = dict(d)
    out["uid"] = uid_for(base, lang)
    out["tags"] = sorted({*d["tags"], lang})
    out["links"] = [
        *d.get("links", []),
        {
            "type": "link",
            "title": gettext(link_title, lang),
            "url": f"/d/{uid_for(base, other)}",
            "keepTime": True,
            "includeVars": True,
            "icon": "doc",
            "targetBlank": False,
            "tags": [],
            "asDropdown": False,
            "tooltip": "",
        },
    ]
    return out


def collect(langs: tuple[Lang, ...] = LANGS) -> list[tuple[str, Dashboard]]:
    """(folder, dashboard) from every ``mebuku.dashboards`` entry point, in name order (the
    platform's own last), once per language (Japanese first); one that fails to import
    raises PluginError naming it."""
    found: list[tuple[str, Dashboard]] = []
    entries = plugins.load("mebuku.dashboards")
    for lang in langs:
        for p in entries:
            for folder, d in p.obj(lang):
                found.append((folder_name(folder, lang), localised(d, lang)))
    validate(found)
    return found


def validate(dashboards: list[tuple[str, Dashboard]]) -> None:
    """Refuse what Grafana would reject or silently merge (duplicate uids, bad folders)."""
    seen: dict[str, str] = {}
    problems: list[str] = []
    for folder, d in dashboards:
        uid = d.get("uid", "")
        if audience(folder)[0] not in FOLDERS:
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
    r"""The file text: sorted keys, Japanese kept as characters (not \u escapes)."""
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
    """What is out of date on disk (missing, changed, stale), empty when current; one line
    each in the process language (``mebuku grafana build --check`` prints them)."""
    files = expected_files(collect())
    diffs: list[str] = []
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        if not path.exists():
            diffs.append(cli_gettext("missing {path}").format(path=rel))
        elif path.read_text(encoding="utf-8") != text:
            diffs.append(cli_gettext("changed {path}").format(path=rel))
    for old in sorted(out_dir.glob("*/*.json")):
        rel = old.relative_to(out_dir).as_posix()
        if rel not in files:
            diffs.append(cli_gettext("stale {path}").format(path=rel))
    return diffs


def providers_yaml() -> str:
    """grafana/provisioning/dashboards/mebuku.yaml: one provider per folder, so folders get
    titles in their language and the same uids as `mebuku grafana push` gives them."""
    folders = sorted({f for f, _d in collect()}, key=lambda f: (audience(f)[1] != DEFAULT_LANG, f))
    providers = [
        {
            "name": f"mebuku-{folder}",
            "orgId": 1,
            "folder": folder_title(folder),
            "folderUid": f"mebuku-{folder}",
            "type": "file",
            "disableDeletion": True,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 60,
            "options": {"path": f"{MOUNT}/{folder}"},
        }
        for folder in folders
    ]
    head = (
        "# Generated by `mebuku grafana build` (api/grafana/build.py): do not edit.\n"
        "# Dashboards from grafana/dashboards/<folder>/, mounted at /var/lib/grafana/dashboards.\n"
        "# One provider per folder: Japanese folders (default) and their English copies (-en).\n"
    )
    return head + _yaml({"apiVersion": 1, "providers": providers})


def _yaml(doc: Any) -> str:
    import yaml

    return str(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100))


def provisioning_files() -> dict[str, str]:
    """Generated provisioning files (relative to grafana/provisioning) -> content."""
    from ingest.dashboard import alert_rules_yaml

    return {
        "dashboards/mebuku.yaml": providers_yaml(),
        "alerting/ingest.yaml": alert_rules_yaml(),
    }


def write_provisioning(out_dir: Path = PROVISIONING) -> list[Path]:
    """Write the generated provisioning files (dashboard providers, alert rules)."""
    written = []
    for rel, text in sorted(provisioning_files().items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def provisioning_differences(out_dir: Path = PROVISIONING) -> list[str]:
    """Generated provisioning files that are missing or out of date."""
    diffs = []
    for rel, text in sorted(provisioning_files().items()):
        path = out_dir / rel
        if not path.exists():
            diffs.append(cli_gettext("missing {path}").format(path=f"provisioning/{rel}"))
        elif path.read_text(encoding="utf-8") != text:
            diffs.append(cli_gettext("changed {path}").format(path=f"provisioning/{rel}"))
    return diffs

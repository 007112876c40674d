"""Publish data sources, folders and dashboards to a running Grafana, idempotently.

Uses grafana-client: each object is read by uid and then created or updated, so running
``mebuku grafana push`` twice changes nothing the second time. The data source
definitions here match ``grafana/provisioning/datasources/mebuku.yaml`` (a test checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_client.client import GrafanaClientError

from api.grafana.build import audience, collect, folder_title
from core.grafana import API_DATASOURCE, SQL_DATASOURCE
from core.i18n import cli_gettext as _

POSTGRES_VERSION = 1500


@dataclass(frozen=True)
class Connection:
    """What the data sources need; for push these come from options or MEBUKU_* env."""

    db_host: str
    db_name: str
    db_user: str
    db_password: str
    api_url: str
    api_key: str
    db_sslmode: str = "disable"


def datasources(c: Connection) -> list[dict[str, Any]]:
    """The two data sources the dashboards expect by uid, pointed at this installation."""
    return [
        {
            "name": "Mebuku TimescaleDB",
            "uid": SQL_DATASOURCE["uid"],
            "type": SQL_DATASOURCE["type"],
            "access": "proxy",
            "url": c.db_host,
            "user": c.db_user,
            "isDefault": True,
            "jsonData": {
                "database": c.db_name,
                "sslmode": c.db_sslmode,
                "timescaledb": True,
                "postgresVersion": POSTGRES_VERSION,
                "maxOpenConns": 10,
                "maxIdleConns": 10,
                "connMaxLifetime": 14400,
                "timeInterval": "10s",
            },
            "secureJsonData": {"password": c.db_password},
        },
        {
            "name": "Mebuku API",
            "uid": API_DATASOURCE["uid"],
            "type": API_DATASOURCE["type"],
            "access": "proxy",
            "url": c.api_url.rstrip("/") + "/grafana",
            "isDefault": False,
            "jsonData": {"httpHeaderName1": "X-API-Key"},
            "secureJsonData": {"httpHeaderValue1": c.api_key},
        },
    ]


def folder_uid(folder: str) -> str:
    """A stable folder uid, so repeated pushes update the folder instead of adding one."""
    return f"mebuku-{folder}"


# Folders closed to Grafana's default Viewer and Editor roles: only Grafana admins and
# the teams named with `push --city-team` may open them. Grafana OSS cannot set folder
# permissions from provisioning files, so `push` sets them through the HTTP API (and
# resets hand-made changes on every run: the list here is the truth).
RESTRICTED_FOLDERS = frozenset({"city"})
VIEW = 1  # Grafana's permission level "View"


class GrafanaSetupError(RuntimeError):
    """Something push needs is missing in Grafana (e.g. a team named on the command line)."""


def team_ids(api: Any, names: list[str]) -> list[int]:
    """The Grafana ids of named teams; a missing team fails the push rather than silently
    leaving a restricted folder closed to the people it was meant for."""
    ids = []
    for name in names:
        found = [t for t in api.teams.get_team_by_name(name) if t.get("name") == name]
        if not found:
            raise GrafanaSetupError(
                _("Grafana team {name} not found: create it first").format(name=repr(name))
            )
        ids.append(int(found[0]["id"]))
    return ids


@dataclass
class PushReport:
    """What push created and what it updated, so the operator sees what changed: each item
    its kind (in the process language), uid and title."""

    created: list[str]
    updated: list[str]


def _exists(getter: Any, uid: str) -> bool:
    try:
        getter(uid)
    except GrafanaClientError as e:
        if e.status_code == 404:
            return False
        raise
    return True


def push(api: Any, conn: Connection, city_teams: list[str] | None = None) -> PushReport:
    """``api`` is a ``grafana_client.GrafanaApi`` (untyped library, hence Any).

    ``city_teams``: Grafana teams that may view the restricted folders (else admins only).
    """
    report = PushReport([], [])
    viewers = team_ids(api, city_teams or [])
    for ds in datasources(conn):
        if _exists(api.datasource.get_datasource_by_uid, ds["uid"]):
            api.datasource.update_datasource_by_uid(ds["uid"], ds)
            report.updated.append(_("data source {uid}").format(uid=ds["uid"]))
        else:
            api.datasource.create_datasource(ds)
            report.created.append(_("data source {uid}").format(uid=ds["uid"]))
    dashboards = collect()
    for folder in sorted({f for f, _dash in dashboards}):
        uid = folder_uid(folder)
        item = _("folder {uid} ({title})").format(uid=uid, title=folder_title(folder))
        if _exists(api.folder.get_folder, uid):
            api.folder.update_folder(uid, title=folder_title(folder), overwrite=True)
            report.updated.append(item)
        else:
            api.folder.create_folder(folder_title(folder), uid=uid)
            report.created.append(item)
        if audience(folder)[0] in RESTRICTED_FOLDERS:
            api.folder.update_folder_permissions(
                uid, {"items": [{"teamId": t, "permission": VIEW} for t in viewers]}
            )
    for folder, d in dashboards:
        existed = _exists(api.dashboard.get_dashboard, d["uid"])
        body = {k: v for k, v in d.items() if k not in ("id", "version")}
        api.dashboard.update_dashboard(
            {
                "dashboard": body,
                "folderUid": folder_uid(folder),
                "overwrite": True,
                "message": "mebuku grafana push",
            }
        )
        (report.updated if existed else report.created).append(
            _("dashboard {uid} ({title})").format(uid=d["uid"], title=d.get("title", ""))
        )
    return report


@dataclass(frozen=True)
class Health:
    """One data source's health as Grafana sees it, with its reason when it fails."""

    uid: str
    ok: bool
    message: str


def check(api: Any) -> list[Health]:
    """Grafana's own health check of each Mebuku data source."""
    out: list[Health] = []
    for uid in (SQL_DATASOURCE["uid"], API_DATASOURCE["uid"]):
        try:
            r = api.datasource.health(uid)
            ok = str(r.get("status", "")).upper() == "OK"
            out.append(Health(uid, ok, str(r.get("message", ""))))
        except GrafanaClientError as e:  # Grafana answers 400 with the failure reason
            body = e.response if isinstance(e.response, dict) else {}
            out.append(Health(uid, False, str(body.get("message") or e.message)))
    return out

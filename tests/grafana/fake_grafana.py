"""A protocol test double for the few Grafana HTTP API endpoints ``mebuku grafana`` uses.

No Grafana server can run on these machines, so this small HTTP server stands in for it
over real HTTP (grafana-client talks to it unchanged). It keeps data sources, folders and
dashboards in memory, requires the service-account bearer token, and answers data source
health like Grafana does, by really trying the data source: it connects to the PostgreSQL
database described by the ``mebuku-timescale`` data source and GETs the JSON API data
source's URL with its configured header.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import psycopg


class FakeGrafana:
    def __init__(self, token: str) -> None:
        self.token = token
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.folder_permissions: dict[str, list[dict[str, Any]]] = {}
        self.teams: dict[str, int] = {}
        self.writes = 0
        self.query: dict[str, list[str]] = {}
        self._next_id = 1

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # Each handler returns (status, body).
    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"/api/datasources/uid/([^/]+)/health", self.ds_health),
            ("GET", r"/api/datasources/uid/([^/]+)", self.ds_get),
            ("PUT", r"/api/datasources/uid/([^/]+)", self.ds_put),
            ("POST", r"/api/datasources", self.ds_post),
            ("POST", r"/api/folders/([^/]+)/permissions", self.folder_permissions_post),
            ("GET", r"/api/teams/search", self.teams_search),
            ("GET", r"/api/folders/([^/]+)", self.folder_get),
            ("PUT", r"/api/folders/([^/]+)", self.folder_put),
            ("POST", r"/api/folders", self.folder_post),
            ("GET", r"/api/dashboards/uid/([^/]+)", self.dash_get),
            ("POST", r"/api/dashboards/db", self.dash_post),
        ]
        for m, pattern, fn in routes:
            match = re.fullmatch(pattern, path)
            if m == method and match:
                return fn(body, *match.groups())  # type: ignore[no-any-return]
        return 404, {"message": "Not found"}

    def ds_get(self, _: Any, uid: str) -> tuple[int, Any]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        return 200, self.datasources[uid]

    def ds_post(self, body: dict[str, Any], *_: str) -> tuple[int, Any]:
        if body["uid"] in self.datasources or not body.get("name") or not body.get("type"):
            return 409, {"message": "data source with the same uid already exists"}
        self.writes += 1
        self.datasources[body["uid"]] = {**body, "id": self.next_id()}
        return 200, {"message": "Datasource added", "datasource": self.datasources[body["uid"]]}

    def ds_put(self, body: dict[str, Any], uid: str) -> tuple[int, Any]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        self.writes += 1
        self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
        return 200, {"message": "Datasource updated"}

    def ds_health(self, _: Any, uid: str) -> tuple[int, Any]:
        ds = self.datasources.get(uid)
        if ds is None:
            return 404, {"message": "Data source not found"}
        try:
            if ds["type"] == "grafana-postgresql-datasource":
                host, _, port = ds["url"].partition(":")
                with psycopg.connect(
                    host=host,
                    port=port or "5432",
                    user=ds["user"],
                    dbname=ds["jsonData"]["database"],
                    password=ds.get("secureJsonData", {}).get("password") or None,
                    sslmode=ds["jsonData"]["sslmode"],
                    connect_timeout=5,
                ) as conn:
                    conn.execute("SELECT 1")
                return 200, {"status": "OK", "message": "Database Connection OK"}
            headers = {ds["jsonData"]["httpHeaderName1"]: ds["secureJsonData"]["httpHeaderValue1"]}
            r = httpx.get(ds["url"].rstrip("/") + "/", headers=headers, timeout=5)
            if r.status_code == 200:
                return 200, {"status": "OK", "message": "Data source is working"}
            return 400, {"status": "ERROR", "message": f"HTTP {r.status_code}"}
        except Exception as e:
            return 400, {"status": "ERROR", "message": str(e)[:200]}

    def folder_get(self, _: Any, uid: str) -> tuple[int, Any]:
        if uid not in self.folders:
            return 404, {"message": "folder not found"}
        return 200, self.folders[uid]

    def folder_post(self, body: dict[str, Any], *_: str) -> tuple[int, Any]:
        uid = body.get("uid") or f"f{self.next_id()}"
        if uid in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        self.writes += 1
        self.folders[uid] = {"uid": uid, "title": body["title"], "id": self.next_id()}
        return 200, self.folders[uid]

    def folder_put(self, body: dict[str, Any], uid: str) -> tuple[int, Any]:
        if uid not in self.folders:
            return 404, {"message": "folder not found"}
        self.writes += 1
        self.folders[uid]["title"] = body.get("title", self.folders[uid]["title"])
        return 200, self.folders[uid]

    def folder_permissions_post(self, body: dict[str, Any], uid: str) -> tuple[int, Any]:
        if uid not in self.folders:
            return 404, {"message": "folder not found"}
        # Grafana replaces the folder's whole list (Viewer/Editor defaults included).
        self.folder_permissions[uid] = list(body["items"])
        return 200, {"message": "Folder permissions updated"}

    def teams_search(self, _: Any, *__: str) -> tuple[int, Any]:
        name = self.query.get("name", [""])[0]
        teams = [{"id": i, "name": n} for n, i in self.teams.items() if n == name]
        return 200, {"teams": teams, "totalCount": len(teams), "perPage": 1000, "page": 1}

    def dash_get(self, _: Any, uid: str) -> tuple[int, Any]:
        if uid not in self.dashboards:
            return 404, {"message": "Dashboard not found"}
        return 200, self.dashboards[uid]

    def dash_post(self, body: dict[str, Any], *_: str) -> tuple[int, Any]:
        d = body["dashboard"]
        uid = d["uid"]
        if body.get("folderUid") not in self.folders:
            return 400, {"message": "folder not found"}
        if uid in self.dashboards and not body.get("overwrite"):
            return 412, {"status": "version-mismatch"}
        self.writes += 1
        version = self.dashboards.get(uid, {}).get("meta", {}).get("version", 0) + 1
        self.dashboards[uid] = {
            "dashboard": d,
            "meta": {"folderUid": body["folderUid"], "version": version},
        }
        return 200, {"status": "success", "uid": uid, "version": version}


@contextmanager
def running(fake: FakeGrafana) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                self._send(401, {"message": "Unauthorized"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            path, _, query = self.path.partition("?")
            fake.query = parse_qs(query)
            status, out = fake.handle(self.command, path, body)
            self._send(status, out)

        def _send(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

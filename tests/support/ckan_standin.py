"""A CKAN Action API stand-in: a real HTTP server (port 0) that answers package_show,
package_create, package_patch and resource_create like CKAN 2.10 and validates each
payload against CKAN's documented default schemas (ckan/logic/schema.py:
default_create_package_schema, default_resource_schema), including its error format
(HTTP 409 with {"success": false, "error": {"__type": "Validation Error", ...}}).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NAME = re.compile(r"^[a-z0-9_-]{2,100}$")
TAG = re.compile(r"^[\w \-.]{2,100}$")
LICENSES = {"cc-by", "cc-by-sa", "cc-zero", "odc-by", "other-open", "notspecified"}
PACKAGE_FIELDS = {
    "name", "title", "notes", "owner_org", "license_id", "author", "author_email",
    "maintainer", "maintainer_email", "version", "url", "tags", "extras", "private",
    "state", "type", "groups", "resources",
}  # fmt: skip
RESOURCE_FIELDS = {
    "package_id", "url", "name", "description", "format", "mimetype", "size", "hash",
    "created", "last_modified", "resource_type",
}  # fmt: skip


@dataclass
class Portal:
    """The stand-in's state: organisations, datasets and every call received."""

    api_key: str
    organizations: set[str] = field(default_factory=lambda: {"maebashi-city"})
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _str(errors: dict[str, list[str]], data: dict[str, Any], key: str, limit: int) -> None:
    v = data.get(key)
    if v is not None and (not isinstance(v, str) or len(v) > limit):
        errors.setdefault(key, []).append("Must be a string")


def validate_package(p: Portal, data: dict[str, Any], creating: bool) -> dict[str, list[str]]:
    """CKAN's package schema: name, owner_org, license, tags, extras, unknown fields."""
    errors: dict[str, list[str]] = {}
    for key in sorted(set(data) - PACKAGE_FIELDS - {"id"}):
        errors.setdefault("__extras", []).append(f"The input field {key} was not expected.")
    name = data.get("name")
    if creating or name is not None:
        if not isinstance(name, str) or not NAME.match(name):
            errors["name"] = [
                "Must be purely lowercase alphanumeric (ascii) characters and these symbols: -_"
            ]
        elif creating and name in p.packages:
            errors["name"] = ["That URL is already in use."]
    if creating and data.get("owner_org") not in p.organizations:
        errors["owner_org"] = ["Organization does not exist"]
    if "license_id" in data and data["license_id"] not in LICENSES:
        errors["license_id"] = ["License not found"]
    for key, limit in (("title", 100), ("notes", 100000), ("author", 100), ("version", 100)):
        _str(errors, data, key, limit)
    for tag in data.get("tags", []):
        if not isinstance(tag, dict) or not TAG.match(str(tag.get("name", ""))):
            errors.setdefault("tags", []).append(f"Tag {tag!r} must be alphanumeric")
    for extra in data.get("extras", []):
        if not isinstance(extra, dict) or set(extra) != {"key", "value"}:
            errors.setdefault("extras", []).append("extras need exactly key and value")
    return errors


def validate_resource(p: Portal, data: dict[str, Any]) -> dict[str, list[str]]:
    """CKAN's resource schema: an existing package, a URL, typed optional fields."""
    errors: dict[str, list[str]] = {}
    if data.get("package_id") not in p.packages:
        errors["package_id"] = ["Not found: Dataset"]
    url = data.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        errors["url"] = ["Please provide a valid URL"]
    if "size" in data and not isinstance(data["size"], int):
        errors["size"] = ["Invalid integer"]
    for key in ("name", "format", "mimetype", "hash", "description"):
        _str(errors, data, key, 1000)
    for key in sorted(set(data) - RESOURCE_FIELDS):
        errors.setdefault("__extras", []).append(f"The input field {key} was not expected.")
    return errors


def _handle(p: Portal, action: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if action == "package_show":
        pkg = p.packages.get(str(data.get("id")))
        if pkg is None:
            return 404, {"__type": "Not Found Error", "message": "Not found"}
        return 200, pkg
    if action in ("package_create", "package_patch"):
        creating = action == "package_create"
        if not creating and data.get("id") not in p.packages:
            return 404, {"__type": "Not Found Error", "message": "Not found"}
        errors = validate_package(p, data, creating)
        if errors:
            return 409, {"__type": "Validation Error", **errors}
        key = data["name"] if creating else data["id"]
        pkg = p.packages.setdefault(key, {"id": key, "resources": []})
        pkg.update({k: v for k, v in data.items() if k != "id"})
        return 200, pkg
    if action == "resource_create":
        errors = validate_resource(p, data)
        if errors:
            return 409, {"__type": "Validation Error", **errors}
        res = {"id": f"res-{len(p.calls)}", **data}
        p.packages[data["package_id"]]["resources"].append(res)
        return 200, res
    return 400, {"__type": "Bad Request", "message": f"unknown action {action}"}


def _handler(portal: Portal) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            action = self.path.rsplit("/", 1)[-1]
            if not self.path.startswith(("/api/action/", "/api/3/action/")):
                return self._send(404, {"__type": "Not Found Error", "message": "Not found"})
            if self.headers.get("Authorization") != portal.api_key:
                return self._send(403, {"__type": "Authorization Error", "message": "denied"})
            if "application/json" not in self.headers.get("Content-Type", ""):
                return self._send(400, {"__type": "Bad Request", "message": "JSON only"})
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = json.loads(body or b"{}")
            portal.calls.append((action, data))
            status, result = _handle(portal, action, data)
            return self._send(status, result)

        def _send(self, status: int, result: dict[str, Any]) -> None:
            ok = status == 200
            doc = {"help": "", "success": ok, ("result" if ok else "error"): result}
            out = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return Handler


class CkanStandIn:
    """Start with ``with CkanStandIn(key) as ckan: ckan.url ...``; stops on exit."""

    def __init__(self, api_key: str) -> None:
        self.portal = Portal(api_key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.portal))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> CkanStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

"""The API platform end to end: credentials, roles, isolation, problem details, limits."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from api.app import DOMAIN_ROUTERS, create_app, import_router
from api.keys import revoke_api_key
from api.routes import effective_routes, route_access
from core.settings import Settings
from core.web import PROBLEM_BASE, Principal, Role, auth_rate_limit, public, require_roles
from tests.conftest import make_settings
from tests.support.credentials import OPERATOR, OTHER_OPERATOR, Credentials

PROBLEM = "application/problem+json"


def assert_problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"]
    return body


def test_healthz_is_public(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_sees_database_and_broker(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("status", "checks")} == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok"},
    }
    # Not a failure, but said: this database has no timetable yet. In Japanese by default.
    assert "GTFS フィードが取り込まれていません" in body["warnings"]["gtfs"]
    assert r.headers["Content-Language"] == "ja"
    en = client.get("/readyz", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert en.headers["Content-Language"] == "en"
    assert {k: en.json()[k] for k in ("status", "checks")} == {
        k: body[k] for k in ("status", "checks")
    }
    assert "no GTFS feed imported" in en.json()["warnings"]["gtfs"]


def test_readyz_reports_unreachable_broker(db_url: str, creds: Credentials) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(make_settings(db_url, f"mqtt://127.0.0.1:{port}"), domain_routers=())
    with TestClient(app) as c:
        r = c.get("/readyz")
        en = c.get("/readyz", headers={"Accept-Language": "en"})
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"  # the machine words never change
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] == "ブローカーに接続できません：ConnectionRefusedError"
    assert en.status_code == 503 and en.json()["status"] == "not ready"
    assert en.json()["checks"]["broker"] == "broker unreachable: ConnectionRefusedError"


def test_no_credentials_is_401_problem(client: TestClient) -> None:
    r = client.get(f"/v1/operators/{OPERATOR}/echo")
    assert_problem(r, 401, "unauthenticated")
    assert "WWW-Authenticate" in r.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "mbk_0000_not-a-key"},
        {"X-API-Key": "something"},
        {"Authorization": "Bearer forged-token"},
        {"Authorization": "Basic dXNlcjpwdw=="},
    ],
)
def test_bad_credentials_are_401(client: TestClient, headers: dict[str, str]) -> None:
    assert_problem(client.get("/v1/me/echo", headers=headers), 401, "unauthenticated")


def test_operator_sees_only_own_operator(client: TestClient, creds: Credentials) -> None:
    own = client.get(f"/v1/operators/{OPERATOR}/echo", headers=creds.headers("operator"))
    assert own.status_code == 200
    assert own.json() == {"owner": f"operator:{OPERATOR}", "note": "route 11 fuel report"}
    other = client.get(f"/v1/operators/{OTHER_OPERATOR}/echo", headers=creds.headers("operator"))
    assert other.status_code in (403, 404)
    assert "roster" not in other.text
    # The other operator, with its own key, does get its data: the 404 was isolation.
    b = client.get(f"/v1/operators/{OTHER_OPERATOR}/echo", headers=creds.headers("other_operator"))
    assert b.status_code == 200 and "roster" in b.text


def test_staff_roles_see_every_operator(client: TestClient, creds: Credentials) -> None:
    for who in ("council", "admin"):
        r = client.get(f"/v1/operators/{OTHER_OPERATOR}/echo", headers=creds.headers(who))
        assert r.status_code == 200, who


def test_resident_sees_only_own_data(client: TestClient, creds: Credentials) -> None:
    a = client.get("/v1/me/echo", headers=creds.headers("resident_a"))
    b = client.get("/v1/me/echo", headers=creds.headers("resident_b"))
    assert a.json()["note"] == "resident A subsidy"
    assert b.json()["note"] == "resident B subsidy"


def test_roles_are_enforced(client: TestClient, creds: Credentials) -> None:
    r = client.get(f"/v1/operators/{OPERATOR}/echo", headers=creds.headers("resident_a"))
    assert_problem(r, 403, "forbidden")
    assert "fuel" not in r.text
    r = client.get("/v1/me/echo", headers=creds.headers("operator"))
    assert_problem(r, 403, "forbidden")


def test_revoked_key_and_session_stop_working(
    db_url: str, client: TestClient, creds: Credentials
) -> None:
    from api.keys import create_api_key

    key = create_api_key(db_url, "council")
    assert client.get("/grafana/", headers={"X-API-Key": key}).status_code == 200
    key_id = key.split("_")[1]
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert revoke_api_key(conn, key_id)
        last_used = conn.execute(
            "SELECT last_used_at FROM api_keys WHERE key_id = %s", [key_id]
        ).fetchone()
    assert last_used is not None and last_used[0] is not None
    assert_problem(client.get("/grafana/", headers={"X-API-Key": key}), 401, "unauthenticated")


def test_every_route_declares_access(client: TestClient) -> None:
    views = [v for v in effective_routes(client.app.routes) if v.is_api]  # type: ignore[attr-defined]
    assert any(v.path == "/v1/operators/{operator_id}/echo" for v in views)
    for view in views:
        assert route_access(view), view.path


def test_route_without_roles_refuses_to_start(settings: Settings) -> None:
    leaky = APIRouter()

    @leaky.get("/v1/leak")
    async def leak() -> dict[str, str]:
        return {"all": "data"}

    with pytest.raises(RuntimeError, match="/v1/leak"):
        create_app(settings, domain_routers=(), extra_routers=[leaky])


def test_public_marker_is_allowed(settings: Settings) -> None:
    open_router = APIRouter(dependencies=[Depends(public)])

    @open_router.get("/v1/auth/challenge")
    async def challenge() -> dict[str, str]:
        return {"nonce": "n"}

    app = create_app(settings, domain_routers=(), extra_routers=[open_router])
    with TestClient(app) as c:
        assert c.get("/v1/auth/challenge").json() == {"nonce": "n"}  # no credentials needed


def test_missing_domain_module_is_skipped_but_broken_one_raises(tmp_path, monkeypatch) -> None:
    assert import_router("mebuku_no_such_pkg.http") is None
    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "http.py").write_text("import mebuku_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        import_router("brokenpkg.http")
    assert set(DOMAIN_ROUTERS) == {
        "mobility.http",
        "mobility.fares.http",
        "fiveg.http",
        "opendata.http",
        "portal.http",
    }


def test_validation_error_names_the_field(client: TestClient, creds: Credentials) -> None:
    r = client.post(
        "/grafana/query",
        headers=creds.headers("council"),
        json={"range": {"from": "yesterday", "to": "2026-11-26T00:00:00Z"}, "targets": []},
    )
    body = assert_problem(r, 422, "validation-error")
    assert "body.range.from" in body["detail"]
    assert body["errors"][0]["field"] == "body.range.from"
    assert "yesterday" not in r.text  # rejected input is not echoed


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nowhere"), 404, "not-found")
    r = client.delete("/healthz")
    assert_problem(r, 405, "method-not-allowed")
    assert "GET" in r.headers["allow"]


def test_unhandled_error_is_500_without_details(settings: Settings, caplog) -> None:
    router = APIRouter()

    @router.get("/v1/boom")
    async def boom(principal: Principal = Depends(require_roles(Role.ADMIN))) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    from api.keys import create_api_key

    key = create_api_key(settings.require_database_url(), "admin")
    app = create_app(settings, domain_routers=(), extra_routers=[router])
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/boom", headers={"X-API-Key": key})
    body = assert_problem(r, 500, "internal-error")
    assert "secret" not in r.text and "Traceback" not in r.text
    assert set(body) == {"type", "title", "status", "instance"}
    assert "secret internal detail" in caplog.text  # logged server-side


def test_every_request_returns_its_pool_connection(settings: Settings) -> None:
    """Three times the pool's size of requests (answered, refused, failed): none waits for
    a connection, and afterwards the pool holds every connection it opened."""
    router = APIRouter()

    @router.get("/v1/boom")
    async def boom(principal: Principal = Depends(require_roles(Role.ADMIN))) -> None:
        raise RuntimeError("boom")

    from api.keys import create_api_key

    key = create_api_key(settings.require_database_url(), "admin")
    app = create_app(settings, domain_routers=(), extra_routers=[router])
    with TestClient(app, raise_server_exceptions=False) as c:
        statuses = [
            c.get("/v1/boom", headers={"X-API-Key": key if i % 3 else "wrong"}).status_code
            for i in range(30)
        ]
        stats = app.state.pool.get_stats()
    assert sorted(set(statuses)) == [401, 500]
    assert stats.get("requests_waiting", 0) == 0
    assert stats["pool_available"] == stats["pool_size"]


def test_body_size_limit(client: TestClient, creds: Credentials) -> None:
    big = b'{"metric": "' + b"x" * 2_000_000 + b'"}'
    r = client.post(
        "/grafana/metrics",
        headers={**creds.headers("council"), "Content-Type": "application/json"},
        content=big,
    )
    assert_problem(r, 413, "payload-too-large")

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b"x" * 50_000

    r = client.post(
        "/grafana/metrics",
        headers={**creds.headers("council"), "Content-Type": "application/json"},
        content=chunks(),
    )
    assert_problem(r, 413, "payload-too-large")


def test_rate_limit_on_auth_routes(settings: Settings) -> None:
    auth = APIRouter(prefix="/v1/auth", dependencies=[Depends(public), Depends(auth_rate_limit)])

    @auth.post("/challenge")
    async def challenge() -> dict[str, str]:
        return {"nonce": "n"}

    app = create_app(settings, domain_routers=(), extra_routers=[auth])
    with TestClient(app) as c:
        codes = [c.post("/v1/auth/challenge").status_code for _ in range(12)]
        assert codes[:10] == [200] * 10
        r = c.post("/v1/auth/challenge")
        assert_problem(r, 429, "rate-limited")
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # other routes are not limited
    openapi = app.openapi()
    assert "429" in openapi["paths"]["/v1/auth/challenge"]["post"]["responses"]


def test_cors_off_by_default_and_allow_list(db_url: str, settings: Settings) -> None:
    with TestClient(create_app(settings, domain_routers=())) as c:
        r = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    allowed = make_settings(db_url, api_cors_origins=["https://city.maebashi.example"])
    with TestClient(create_app(allowed, domain_routers=())) as c:
        ok = c.get("/healthz", headers={"Origin": "https://city.maebashi.example"})
        assert ok.headers["access-control-allow-origin"] == "https://city.maebashi.example"
        bad = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in bad.headers


def test_metrics_count_by_route_template(client: TestClient, creds: Credentials) -> None:
    client.get(f"/v1/operators/{OPERATOR}/echo", headers=creds.headers("operator"))
    text = client.get("/metrics").text
    assert 'route="/v1/operators/{operator_id}/echo"' in text
    assert OPERATOR not in text  # ids never become label values
    assert "mebuku_http_request_duration_seconds_bucket" in text


def test_openapi_lists_security_schemes_and_problems(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "description": "Operator, council or admin API key",
        "in": "header",
        "name": "X-API-Key",
    }
    op = spec["paths"]["/v1/operators/{operator_id}/echo"]["get"]
    assert {"401", "403", "404", "422"} <= set(op["responses"])
    assert "application/problem+json" in op["responses"]["403"]["content"]
    # require_roles reads both credentials itself; OpenAPI still lists them on the route
    assert op["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert client.get("/docs").status_code == 200


def test_declared_error_statuses_get_the_problem_schema(settings: Settings) -> None:
    router = APIRouter()

    @router.post("/v1/things", responses={409: {"description": "Already there"}})
    async def make(principal: Principal = Depends(require_roles(Role.ADMIN))) -> None:
        return None

    spec = create_app(settings, domain_routers=(), extra_routers=[router]).openapi()
    responses = spec["paths"]["/v1/things"]["post"]["responses"]
    assert responses["409"]["description"] == "Already there"
    assert "application/problem+json" in responses["409"]["content"]
    assert {"401", "403"} <= set(responses) and "422" not in responses  # takes no input


def test_database_down_is_503_problem_not_500(
    creds: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import api.app as app_module

    with socket.socket() as s:  # nothing listens here: the database is "down"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = make_settings(f"postgresql://postgres@127.0.0.1:{port}/mebuku", None)
    monkeypatch.setattr(app_module, "POOL_TIMEOUT_S", 0.5)
    with TestClient(create_app(down, domain_routers=())) as c:
        r = c.get("/grafana/", headers=creds.headers("council"))
        body = assert_problem(r, 503, "database-unavailable")
        assert "postgres" not in r.text and "127.0.0.1" not in r.text
        assert r.headers["retry-after"] == "5" and body["detail"]
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("データベースに接続できません：")

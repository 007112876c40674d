"""The exact-path route index answers every request the way the full route table does."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.route_index import RouteIndex, candidate_routes, install_route_index


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"by": "parameter", "id": item_id}

    @app.get("/items/special")  # shadowed: the parameter route comes first
    async def special() -> dict[str, str]:
        return {"by": "fixed"}

    @app.get("/v1/me/subsidy")
    async def subsidy() -> dict[str, str]:
        return {"by": "subsidy"}

    @app.post("/v1/fares/quote")
    async def quote(body: dict[str, int]) -> dict[str, int]:
        return body

    return app


REQUESTS = [
    ("GET", "/v1/me/subsidy", None),
    ("HEAD", "/v1/me/subsidy", None),
    ("POST", "/v1/me/subsidy", None),  # 405 with Allow
    ("POST", "/v1/fares/quote", {"a": 1}),
    ("GET", "/v1/fares/quote", None),
    ("POST", "/v1/fares/quote", {"a": "x"}),  # 422
    ("GET", "/items/special", None),
    ("GET", "/items/42", None),
    ("GET", "/v1/me/subsidy/", None),  # trailing slash: redirect
    ("GET", "/nowhere", None),
]


def _answers(app: FastAPI) -> list[tuple[int, str, str | None]]:
    with TestClient(app) as c:
        out = []
        for method, path, body in REQUESTS:
            r = c.request(method, path, json=body, follow_redirects=False)
            out.append((r.status_code, r.text, r.headers.get("allow") or r.headers.get("location")))
        return out


def test_indexed_app_answers_like_the_full_table() -> None:
    plain, indexed = _app(), _app()
    assert install_route_index(indexed)
    assert isinstance(indexed.router.middleware_stack, RouteIndex)
    got = _answers(indexed)
    assert got == _answers(plain)
    assert got[0][0] == 200 and got[2][0] == 405 and got[5][0] == 422
    assert '"parameter"' in got[6][1]  # the shadowing route still wins


def test_candidates_keep_order_and_drop_only_rejecting_patterns() -> None:
    app = _app()
    paths = [getattr(r, "path", "") for r in candidate_routes(app.router.routes, "/items/special")]
    assert paths == ["/items/{item_id}", "/items/special"]
    assert [
        getattr(r, "path", "") for r in candidate_routes(app.router.routes, "/v1/me/subsidy")
    ] == ["/v1/me/subsidy"]


def test_index_follows_routes_added_later() -> None:
    app = _app()
    install_route_index(app)
    with TestClient(app) as c:
        assert c.get("/late").status_code == 404

        @app.get("/late")
        async def late() -> dict[str, str]:
            return {"by": "late"}

        assert c.get("/late").json() == {"by": "late"}

"""Domain errors mapped to problems once (core.web.problem_handlers_of, api.problems)."""

from __future__ import annotations

import types

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import problems
from core.web import PROBLEM_BASE, ProblemError, problem_handlers_of
from mobility.fares import http as fares_http
from mobility.fares.policy import NoPolicyError


class _OutOfSeatsError(Exception):
    pass


def _domain(handlers: object) -> types.ModuleType:
    mod = types.ModuleType("tests.fake_domain")
    mod.problem_handlers = handlers  # type: ignore[attr-defined]
    return mod


def _app(*raising: Exception) -> FastAPI:
    app = FastAPI()
    problems.install_domain(
        app,
        problem_handlers_of(
            _domain(
                {
                    NoPolicyError: lambda e: ProblemError(422, "no-policy", "No policy in force"),
                    _OutOfSeatsError: lambda e: ProblemError(409, "full", "Full", str(e), left=0),
                }
            )
        ),
    )
    problems.install(app)

    @app.get("/boom/{i}")
    async def boom(i: int) -> None:
        raise raising[i]

    return app


def test_a_domain_error_is_answered_as_its_problem_in_japanese_first() -> None:
    client = TestClient(_app(NoPolicyError("none on 1999-01-01"), _OutOfSeatsError("no seat")))
    r = client.get("/boom/0")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == PROBLEM_BASE + "no-policy"
    assert body["title"] == "適用中の運賃・助成ルールがありません"
    assert body["instance"] == "/boom/0"
    r = client.get("/boom/1", headers={"Accept-Language": "en"})
    assert (r.status_code, r.json()["detail"], r.json()["left"]) == (409, "no seat", 0)


def test_declarations_are_checked_and_a_class_is_mapped_once() -> None:
    assert problem_handlers_of(types.ModuleType("plain")) == {}
    with pytest.raises(TypeError, match="not an exception class"):
        problem_handlers_of(_domain({"NoPolicyError": lambda e: e}))
    with pytest.raises(TypeError, match="not usable"):
        problem_handlers_of(_domain({Exception: lambda e: e}))
    with pytest.raises(TypeError, match="not usable"):
        problem_handlers_of(_domain({NoPolicyError: "no-policy"}))
    app = FastAPI()
    problems.install_domain(app, problem_handlers_of(fares_http))
    with pytest.raises(RuntimeError, match="NoPolicyError"):
        problems.install_domain(app, problem_handlers_of(fares_http))


def test_the_fares_domain_maps_each_of_its_errors() -> None:
    mapped = problem_handlers_of(fares_http)
    assert NoPolicyError in mapped
    assert mapped[NoPolicyError](NoPolicyError("x")).status == 422


def test_the_fares_second_line_screen_refuses_when_mounted_without_the_api_screen() -> None:
    from mobility.fares.mynumber import check_digit

    number = "12345678901" + str(check_digit("12345678901"))
    app = FastAPI()  # the fares router alone: no api.screen.RequestScreen in front
    app.include_router(fares_http.router)
    problems.install(app)
    client = TestClient(app)
    r = client.post("/v1/fares/quote", json={"kind": "taxi", "note": number})
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM_BASE + "individual-number-refused"
    assert number not in r.text
    r = client.get("/v1/me/rides", params={"limit": number})
    assert r.json()["type"] == PROBLEM_BASE + "individual-number-refused"

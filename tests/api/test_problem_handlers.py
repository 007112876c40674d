"""Domain errors mapped to problems once (core.web.problem_handlers_of, api.problems)."""

from __future__ import annotations

import types

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from api import problems
from core.web import PROBLEM_BASE, ProblemError, problem_handlers_of
from fiveg.trial import TrialDefinition
from mobility.fares import http as fares_http
from mobility.fares.policy import NoPolicyError
from tests.fiveg import known_set


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


def _validating_app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.put("/trials")
    async def put(body: TrialDefinition, limit: int = Query(10, le=100)) -> dict[str, str]:
        return {"trial": body.trial_id}

    return app


def test_a_422_problem_says_each_field_in_the_clients_language() -> None:
    """pydantic's refusals in Japanese by default (a sentence per error type, our own
    validators' too), English when asked; ``field`` and ``type`` never change."""
    bad = known_set.trial_definition("broken-trial")
    del bad["title"]
    bad["colour"] = "green"
    bad["targets"] = [{"kpi": "warp_factor", "op": ">=", "value": 9, "source": "x"}]
    with TestClient(_validating_app()) as c:
        ja = c.put("/trials?limit=abc", json=bad)
        en = c.put("/trials?limit=abc", json=bad, headers={"Accept-Language": "en"})
        period = {**known_set.trial_definition("period-trial"), "period_end": bad["period_start"]}
        ja_period = c.put("/trials", json=period)
    assert ja.status_code == en.status_code == 422
    assert ja.headers["Content-Language"] == "ja" and en.headers["Content-Language"] == "en"
    jb, eb = ja.json(), en.json()
    machine = [(e["field"], e["type"]) for e in jb["errors"]]
    assert machine == [(e["field"], e["type"]) for e in eb["errors"]]
    assert set(machine) >= {
        ("query.limit", "int_parsing"),
        ("body.title", "missing"),
        ("body.colour", "extra_forbidden"),
        ("body.targets[0].kpi", "value_error"),
    }
    ja_words = {e["field"]: e["message"] for e in jb["errors"]}
    en_words = {e["field"]: e["message"] for e in eb["errors"]}
    assert ja_words["body.title"] == "値が必要です"
    assert ja_words["body.colour"].startswith("定義にない項目です")
    assert ja_words["query.limit"].startswith("整数")
    assert ja_words["body.targets[0].kpi"].startswith("KPI 'warp_factor' はありません")
    assert jb["title"] == "リクエストの内容が正しくありません"
    assert jb["detail"].startswith("正しくない項目：") and "body.title" in jb["detail"]
    assert en_words["body.title"] == "Field required"
    assert en_words["body.colour"] == "Extra inputs are not permitted"
    assert en_words["body.targets[0].kpi"].startswith("unknown KPI 'warp_factor'")
    assert eb["detail"].startswith("Invalid field(s): ")
    assert not any("Input should" in m or "Field required" in m for m in ja_words.values())
    (err,) = ja_period.json()["errors"]
    assert err["type"] == "value_error"
    assert err["message"] == "period_end は period_start より後にしてください"


def test_a_detail_with_values_is_said_again_in_the_clients_language() -> None:
    """``F_`` details (values in a message id) follow Accept-Language like titles."""
    from core.i18n import F_

    app = FastAPI()
    problems.install(app)

    @app.get("/trials/{trial_id}")
    async def trial(trial_id: str) -> None:
        raise ProblemError(
            404, "not-found", "Not found", F_("No trial {trial}.", trial=repr(trial_id))
        )

    with TestClient(app) as c:
        ja = c.get("/trials/bus-2026").json()
        en = c.get("/trials/bus-2026", headers={"Accept-Language": "en"}).json()
    assert ja["detail"] == "実証 'bus-2026' はありません。" and ja["title"] == "見つかりません"
    assert en["detail"] == "No trial 'bus-2026'." and en["title"] == "Not found"
    assert ja["type"] == en["type"] and ja["status"] == en["status"] == 404


def test_no_policy_in_force_is_said_in_the_clients_language() -> None:
    from datetime import date

    from mobility.fares.policy import PolicyBook

    try:
        PolicyBook((), ()).mytaku_at(date(1999, 1, 1))
    except NoPolicyError as e:
        raised = e
    app = FastAPI()
    problems.install_domain(app, problem_handlers_of(fares_http))
    problems.install(app)

    @app.get("/ride")
    async def ride() -> None:
        raise raised

    with TestClient(app) as c:
        ja = c.get("/ride").json()
        en = c.get("/ride", headers={"Accept-Language": "en"}).json()
    assert ja["detail"] == "1999-01-01 に適用される mytaku の運賃・助成ルールがありません"
    assert en["detail"] == "no mytaku policy in force on 1999-01-01"

"""The request screen (api/screen.py): every byte of every request, before routing.

Pure checks of the scanners first, then the real app (every domain router, the real
database) refusing the spellings the issue found getting through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, Depends, Response
from fastapi.testclient import TestClient

from api.app import create_app
from api.screen import (
    AccessLogFilter,
    literal_json_clean,
    masked_path,
    screen_body,
    screen_headers,
    screen_target,
)
from core.settings import Settings
from core.web import Principal, Role, require_roles
from mobility.fares.mynumber import check_digit, is_valid_my_number, looks_like_my_number
from tests.support.credentials import OPERATOR, Credentials

N = "55566677788"
N += str(check_digit(N))  # synthetic, valid check digit, built at run time
WRONG = N[:11] + str((int(N[11]) + 1) % 10)  # the same digits with a wrong check digit
FULL = N.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def spellings(n: str = N) -> list[str]:
    a, b, c = n[:4], n[4:8], n[8:]
    return [
        n,
        f"{a}-{b}-{c}",
        f"{a} {b} {c}",
        f"{a}.{b}.{c}",
        f"{a}/{b}/{c}",
        f"{a} - {b} - {c}",
        f"{a}\u3000{b}\u3000{c}",  # ideographic spaces
        n.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        f"{a}－{b}－{c}",  # full-width hyphens
        f"{a}ー{b}ー{c}",  # katakana prolonged sound mark, often typed as a dash
        "\u200b".join(n),  # zero-width spaces between digits
        " ".join(n),
        n.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),  # Arabic-Indic digits
    ]


@pytest.mark.parametrize("i", range(len(spellings())))
def test_every_spelling_is_found(i: int) -> None:
    assert looks_like_my_number(f"rider My Number {spellings(N)[i]} checked")
    assert not looks_like_my_number(f"rider My Number {spellings(WRONG)[i]} checked")


def test_longer_runs_and_ordinary_text_pass() -> None:
    for ok in (
        "1" + N,  # 13 digits: a millisecond time, not a My Number
        "2026-11-20T10:05:00+09:00",
        "T-2026-000123",
        "012E4CD8A1B20A1F",
        "139.072877, 36.38373",
        WRONG,
    ):
        assert not looks_like_my_number(ok), ok


def test_json_bodies_any_json_type_any_case_and_numbers() -> None:
    assert is_valid_my_number(N)
    note = json.dumps({"note": f"rider My Number {N} checked"}).encode()
    for ct in (
        "application/json",
        "Application/Json",
        "APPLICATION/JSON; charset=utf-8",
        "application/merge-patch+json",
        "application/vnd.api+JSON",
        "",  # undeclared: FastAPI parses it as JSON
        "text/plain",  # wrong type: read as text
        "application/octet-stream",
    ):
        assert screen_body(note, ct) in (["body.note"], ["body"]), ct
    for number in (N, f"{N}.0", f"{N[0]}.{N[1:]}e11", f"{N}0e-1", f"-{N}"):
        assert screen_body(f'{{"fare": {number}}}'.encode(), "application/json") == ["body.fare"], (
            number
        )
    assert screen_body(json.dumps({"a": [{"b": FULL}]}).encode(), "application/json") == [
        "body.a[0].b"
    ]
    escaped = "".join(f"\\u{ord(c):04x}" for c in N)
    assert screen_body(f'{{"n": "{escaped}"}}'.encode(), "application/json") == ["body.n"]
    dup = f'{{"note": "{N}", "note": "ok"}}'.encode()  # a duplicate key is seen too
    assert screen_body(dup, "application/json") == ["body.note"]
    key = json.dumps({N: 1}).encode()
    assert screen_body(key, "application/json") == ["body.<key>"]
    # clean bodies pass, including numeric arrays and coordinates
    clean = json.dumps({"pickup": {"lon": 139.072877123, "lat": 36.383731234}, "n": 12})
    assert screen_body(clean.encode(), "application/json") == []
    assert screen_body(json.dumps({"fare": int(WRONG)}).encode(), "application/json") == []


def test_json_in_other_encodings() -> None:
    doc = json.dumps({"note": N})
    for enc in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"):
        assert screen_body(doc.encode(enc), "application/json"), enc
        assert screen_body(doc.encode(enc), "text/plain; charset=whatever"), enc


def test_form_text_and_multipart_bodies() -> None:
    a, b, c = N[:4], N[4:8], N[8:]
    form = "application/x-www-form-urlencoded"
    assert screen_body(f"note=My+Number+{a}+{b}+{c}".encode(), form) == ["body"]
    pct = "".join(f"%{ord(ch):02X}" for ch in N)
    assert screen_body(f"note={pct}".encode(), form) == ["body"]
    assert screen_body(f"note={pct.replace('%', '%25')}".encode(), form) == ["body"]
    assert screen_body(FULL.encode("shift_jis"), "text/plain; charset=shift_jis") == ["body"]
    assert screen_body(f"{a}.{b}.{c}".encode("utf-16"), "text/plain") == ["body"]
    boundary = "XyZ"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
        f"{a} {b} {c}\r\n--{boundary}--\r\n"
    ).encode()
    assert screen_body(multipart, f"multipart/form-data; boundary={boundary}") == ["body"]
    assert screen_body(b"note=route+11", form) == []


def test_path_query_and_logged_headers() -> None:
    assert screen_target(f"/v1/me/cards/{N}".encode(), f"/v1/me/cards/{N}", b"") == ["path"]
    pct = "".join(f"%{ord(ch):02X}" for ch in N)
    assert screen_target(f"/v1/x/{pct}".encode(), f"/v1/x/{N}", b"") == ["path"]
    assert screen_target(b"/v1/x/%25" + pct[1:].encode(), "/v1/x/%" + pct[1:], b"") == ["path"]
    assert screen_target(b"/v1/x", "/v1/x", f"note={N[:6]}+{N[6:]}".encode()) == ["query"]
    assert screen_target(b"/v1/x", "/v1/x", f"{N}=1".encode()) == ["query"]
    assert screen_target(b"/v1/x/2026-12", "/v1/x/2026-12", b"limit=100") == []
    headers = [(b"user-agent", f"bot {N}".encode()), (b"x-api-key", N.encode())]
    assert screen_headers(headers) == ["header.user-agent"]
    assert screen_headers([(b"referer", FULL.encode())]) == ["header.referer"]


def test_access_log_masks_every_twelve_digit_run_and_drops_queries() -> None:
    a, b, c = N[:4], N[4:8], N[8:]
    for path in (f"/v1/me/cards/{N}", f"/v1/x/{a}.{b}.{c}", f"/v1/x/{FULL}", f"/v1/x/{WRONG}"):
        record = logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5000", "DELETE", f"{path}?note=secret", "1.1", 422),
            None,
        )
        assert AccessLogFilter().filter(record)
        line = record.getMessage()
        digits = "".join(ch for ch in line if ch.isdigit())
        assert N not in digits and WRONG not in digits and "secret" not in line, line
        assert "/v1/" in line and "422" in line
    assert masked_path("/v1/operators/gunma-chuo/statements/2026-12") == (
        "/v1/operators/gunma-chuo/statements/2026-12"
    )


# ------------------------------------------------------------------ the real app


def _bad_header_router() -> APIRouter:
    router = APIRouter(prefix="/v1/test")

    @router.get("/header")
    async def header(
        value: str, principal: Principal = Depends(require_roles(Role.ADMIN))
    ) -> Response:
        return Response("ok", headers={"X-Echo": value})

    return router


@pytest.fixture(scope="module")
def app(settings: Settings, creds: Credentials) -> Iterator[TestClient]:
    application = create_app(settings, extra_routers=[_bad_header_router()])
    with TestClient(application, raise_server_exceptions=False) as c:
        yield c


def _refused(r: object) -> None:
    assert r.status_code == 422, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["type"].endswith("individual-number-refused") and body["fields"]
    text = r.text  # type: ignore[attr-defined]
    digits = "".join(ch for ch in text if ch.isdigit())
    assert N not in digits, "the refusal must not echo the number"


def test_app_refuses_what_the_issue_saw_getting_through(
    app: TestClient, creds: Credentials
) -> None:
    op = creds.headers("operator")
    a, b, c = N[:4], N[4:8], N[8:]
    url = f"/v1/operators/{OPERATOR}/taxi/T-1/reversal"
    body = json.dumps({"note": f"rider My Number {N} checked"})
    _refused(app.post(url, content=body, headers={**op, "Content-Type": "Application/Json"}))
    _refused(app.post(url, content=body, headers={**op, "Content-Type": "application/x+json"}))
    _refused(app.post(url, json={"note": f"{a}.{b}.{c}"}, headers=op))
    _refused(app.post(url, content=f'{{"note": {N}.0}}', headers=op))
    _refused(app.delete(f"/v1/me/cards/{N}", headers=creds.headers("resident_a")))
    # routers that had no screen: mobility, 5G, Grafana, health
    council = creds.headers("council")
    _refused(app.get(f"/v1/fiveg/trials/{N}", headers=council))
    _refused(app.get("/v1/fiveg/trials", params={"site": f"{a} {b} {c}"}, headers=council))
    _refused(app.post("/grafana/query", json={"targets": [{"target": N}]}, headers=council))
    _refused(app.get(f"/v1/operators/{FULL}/vehicles", headers=op))
    _refused(app.get("/gtfs-rt/vehicle-positions", params={"format": f"{a}-{b}-{c}"}))
    _refused(app.get("/healthz", headers={"User-Agent": f"probe {N}"}))
    # and it runs before authentication: even an anonymous caller is refused, not 401
    _refused(app.get(f"/v1/me/cards/{N}"))


def test_app_passes_clean_requests_and_wrong_check_digits(
    app: TestClient, creds: Credentials
) -> None:
    assert app.get("/healthz").status_code == 200
    r = app.get(f"/v1/me/cards/{WRONG}", headers=creds.headers("resident_a"))
    assert r.status_code != 422 or "individual-number" not in r.text


def test_app_body_limit_and_replay(app: TestClient, creds: Credentials) -> None:
    big = b'{"metric": "' + b"x" * 2_000_000 + b'"}'
    r = app.post("/grafana/metrics", content=big, headers=creds.headers("council"))
    assert r.status_code == 413 and r.json()["type"].endswith("payload-too-large")

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 50_000

    r = app.post("/grafana/metrics", content=chunks(), headers=creds.headers("council"))
    assert r.status_code == 413
    # a screened body still reaches the route intact
    r = app.post("/grafana/metrics", json={"metric": ""}, headers=creds.headers("council"))
    assert r.status_code == 200 and r.json(), r.text


def test_no_response_header_carries_cr_or_lf(app: TestClient, creds: Credentials) -> None:
    admin = creds.headers("admin")
    assert app.get("/v1/test/header", params={"value": "fine"}, headers=admin).status_code == 200
    for value in ("a\r\nSet-Cookie: x=1", "a\nb", "a\rb"):
        r = app.get("/v1/test/header", params={"value": value}, headers=admin)
        assert r.status_code == 500 and "x-echo" not in r.headers
        assert r.json()["type"].endswith("internal-error")


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 2e11}',  # 200000000000 is a valid Individual Number in 2 digits
        b'{"n": 2E+11, "kind": "taxi"}',
        b'{"a": 1234, "s": "' + b"\\u0032" + b"\\u0030" * 11 + b'"}',  # escaped digits
        b'{"a": "2000-0000-0000"}',
    ],
)
def test_the_short_cut_for_small_json_never_lets_a_number_through(body: bytes) -> None:
    """Bodies with few literal digits skip the full walk only when no escape or exponent
    can make more digits appear; these spell 200000000000 that way and are refused."""
    assert not literal_json_clean(body)
    assert screen_body(body, "application/json")


@pytest.mark.parametrize(
    "body",
    [b'{"kind": "taxi", "meter_fare_yen": 2400, "registrants": 1}', b"[1, 2, 3]", b"{}"],
)
def test_small_clean_json_takes_the_short_cut_with_the_same_answer(body: bytes) -> None:
    assert literal_json_clean(body)
    assert screen_body(body, "application/json") == []
    assert screen_body(body, "text/plain") == []  # the full text screen agrees

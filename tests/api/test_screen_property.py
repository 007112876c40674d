"""Property: a 12-digit Individual Number placed anywhere in any request is refused, and
nothing of it is stored or logged.

Requests come from the OpenAPI document (schemathesis generates a valid-looking case per
operation); then, in turn, every path segment, every query parameter (plus an undeclared
one), the logged headers and every field of the JSON body get the number, in rotating
spellings (plain, 4-4-4 with hyphens, dots, slashes or spaces, full-width, zero-width
joiners, JSON numbers 123456789018.0 and 1.23456789018e11) and rotating body types (JSON
in any case, ``+json``, undeclared, text, urlencoded and multipart forms). Each request
goes to a real uvicorn with the production access-log filter, on the real database, with
credentials that would otherwise be allowed. Afterwards every table and every log line is
scanned with the check-digit scan.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import psycopg
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings

from api.app import create_app
from api.plugins import import_optional
from api.screen import AccessLogFilter
from core.settings import Settings
from mobility.fares.mynumber import check_digit, is_valid_my_number, looks_like_my_number
from tests.conftest import make_settings
from tests.support.credentials import Credentials
from tests.support.privacy import stored_values, without_random_ids
from tests.support.wait import wait_until

N = "31415926535"
N += str(check_digit(N))  # synthetic, valid check digit, built at run time
A, B, C = N[:4], N[4:8], N[8:]
STRING_SPELLINGS = [
    N,
    f"{A}-{B}-{C}",
    f"{A}.{B}.{C}",
    f"{A}/{B}/{C}",
    f"note {A} {B} {C} end",
    N.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    f"{A}－{B}－{C}",
    "\u200b".join(N),
]
NUMBER_LITERALS = [N, f"{N}.0", f"{N[0]}.{N[1:]}e11"]
BODY_TYPES = [
    "application/json",
    "Application/JSON",
    "application/vnd.mebuku+json; charset=utf-8",
    None,  # undeclared: FastAPI reads it as JSON
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
]
LOGGED_HEADERS = ["User-Agent", "Referer", "X-Forwarded-For"]
MAX_EXAMPLES = int(os.environ.get("MEBUKU_SCREEN_EXAMPLES", "2"))
PLACEHOLDER = "__MEBUKU_NUMBER__"
CLIENT_LOGGERS = ("httpx", "httpcore", "hpack")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(CLIENT_LOGGERS):  # the test's own HTTP client
            self.lines.append(self.format(record))


@contextmanager
def serve_with_access_log(app: FastAPI, collect: logging.Handler) -> Iterator[str]:
    """uvicorn as ``mebuku api`` runs it: access log on, through AccessLogFilter."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    access = logging.getLogger("uvicorn.access")
    flt = AccessLogFilter()
    access.addFilter(flt)
    # another test's uvicorn may have applied uvicorn's own logging config, whose "uvicorn"
    # logger does not propagate to the root: collect the access log at its own logger
    saved = (access.propagate, access.disabled, access.level)
    access.propagate, access.disabled = False, False
    access.addHandler(collect)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="info")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 20, every=0.05)
    assert server.started and thread.is_alive(), "API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        access.removeFilter(flt)
        access.removeHandler(collect)
        access.propagate, access.disabled = saved[:2]
        access.setLevel(saved[2])


@pytest.fixture(scope="module")
def logs() -> Iterator[Collect]:
    h = Collect()
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(h)
    yield h
    root.removeHandler(h)
    root.setLevel(old)


@pytest.fixture(scope="module")
def live(
    settings: Settings,
    creds: Credentials,
    logs: Collect,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    extra: dict[str, Any] = {}
    jpki = import_optional("tests.mobility.fares.jpki")
    if jpki is not None:
        anchors, crl = jpki.TestCA().write(tmp_path_factory.mktemp("jpki"))
        extra = {"jpki_trust_anchors": anchors, "jpki_crl": crl}
    full = make_settings(settings.database_url, settings.mqtt_url, **extra)
    with serve_with_access_log(create_app(full), logs) as url:
        yield url


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every scalar in a JSON value (and to the value itself when scalar)."""
    if isinstance(value, dict):
        out = [p for k, v in value.items() for p in leaves(v, (*path, k))]
        return out or [path]
    if isinstance(value, list):
        out = [p for i, v in enumerate(value) for p in leaves(v, (*path, i))]
        return out or [path]
    return [path]


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    out = copy.deepcopy(value)
    ref = out
    for k in path[:-1]:
        ref = ref[k]
    ref[path[-1]] = new
    return out


def flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in flat(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in flat(v, f"{prefix}[{i}]")]
    return [(prefix or "value", value if isinstance(value, str) else json.dumps(value))]


def encode_body(body: Any, media: str | None, literal: str | None) -> tuple[bytes, str | None]:
    """The body in the given type; ``literal`` replaces the placeholder as a JSON number."""
    text = json.dumps(body, ensure_ascii=False)
    if literal is not None:
        text = text.replace(f'"{PLACEHOLDER}"', literal)
    if media == "application/x-www-form-urlencoded":
        pairs = flat(json.loads(text.replace(f'"{PLACEHOLDER}"', "0")) if literal else body)
        if literal is not None:
            pairs.append(("number", literal))
        return urlencode(pairs).encode(), media
    if media == "multipart/form-data":
        pairs = flat(body) if literal is None else [("number", literal)]
        parts = "".join(
            f'--b0undary\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in pairs
        )
        return f"{parts}--b0undary--\r\n".encode(), "multipart/form-data; boundary=b0undary"
    return text.encode(), media


def who(path: str) -> str:
    return "resident_a" if path.startswith(("/v1/me", "/v1/fares", "/v1/auth")) else "admin"


@dataclass(frozen=True)
class Content:
    """What a request carries besides its target: extra headers, a body and its type."""

    headers: dict[str, str | bytes] = field(default_factory=dict)
    body: bytes | None = None
    media: str | None = None


class Sender:
    def __init__(self, base: str, creds: Credentials) -> None:
        self.base = base
        self.creds = creds
        self.http = httpx.Client(timeout=30)
        self.sent = 0
        self.failures: list[str] = []
        self.spelling = itertools.cycle(STRING_SPELLINGS)
        self.literal = itertools.cycle(NUMBER_LITERALS)
        self.media = itertools.cycle(BODY_TYPES)

    def send(
        self,
        label: str,
        method: str,
        path: str,
        query: dict[str, Any],
        content: Content,
        expect_refusal: bool = True,
    ) -> None:
        headers, body, media = content.headers, content.body, content.media
        h: dict[str, str | bytes] = {**headers, **self.creds.headers(who(path))}
        if media is not None:
            h["Content-Type"] = media
        raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in h.items()]
        r = self.http.request(method, self.base + path, params=query, headers=raw, content=body)
        self.sent += 1
        refused = r.status_code == 422 and "individual-number-refused" in r.text
        if expect_refusal and not refused:
            self.failures.append(f"{label}: {r.status_code} {r.text[:200]}")
        if not expect_refusal and refused:
            self.failures.append(f"{label}: clean request refused")
        if N in "".join(ch for ch in r.text if ch.isdigit()):
            self.failures.append(f"{label}: the response echoes the number")

    def exercise(self, operation: Any, case: Any) -> None:
        method = operation.method.upper()
        params = {k: str(v) for k, v in (case.path_parameters or {}).items()}
        path = operation.path
        for k, v in params.items():
            path = path.replace("{" + k + "}", quote(v, safe="") or "x")
        query = dict(case.query or {})
        body = case.body if operation.body else None
        has_body = body is not None and method in ("POST", "PUT", "PATCH", "DELETE")
        clean_body = json.dumps(body).encode() if has_body else None
        media = "application/json" if has_body else None
        label = f"{method} {operation.path}"
        original = json.dumps([path, query, body], ensure_ascii=False, default=str)
        if not looks_like_my_number(original) and not has_body:
            self.send(label + " (clean)", method, path, query, Content(), False)
        # every path segment in turn
        segments = path.split("/")
        for i, seg in enumerate(segments):
            if seg:
                bad = "/".join(
                    [*segments[:i], quote(next(self.spelling), safe=""), *segments[i + 1 :]]
                )
                self.send(f"{label} path[{i}]", method, bad, query, Content({}, clean_body, media))
        # every query parameter in turn, and one nobody declared
        for k in [*query, "note"]:
            self.send(
                f"{label} query.{k}",
                method,
                path,
                {**query, k: next(self.spelling)},
                Content({}, clean_body, media),
            )
        for name in LOGGED_HEADERS:
            value = next(self.spelling).encode("utf-8")
            self.send(f"{label} header.{name}", method, path, query, Content({name: value}))
        if not has_body:
            return
        for leaf in leaves(body):
            as_number = isinstance(_get(body, leaf), int | float) and not isinstance(
                _get(body, leaf), bool
            )
            mt = next(self.media)
            if as_number:
                raw, ct = encode_body(replaced(body, leaf, PLACEHOLDER), mt, next(self.literal))
            else:
                raw, ct = encode_body(replaced(body, leaf, next(self.spelling)), mt, None)
            self.send(
                f"{label} body{list(leaf)} as {mt}", method, path, query, Content({}, raw, ct)
            )
        extra = replaced(body, ("my_number",), N) if isinstance(body, dict) else [body, N]
        raw, ct = encode_body(extra, next(self.media), None)
        self.send(f"{label} body extra field", method, path, query, Content({}, raw, ct))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        value = value[k]
    return value


def scan_database(conn: psycopg.Connection) -> list[str]:
    """Columns (text-like and bytea, every table) holding a valid-looking My Number."""
    found: list[str] = []
    for where, value in stored_values(conn):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if looks_like_my_number(without_random_ids(text)):
            found.append(where)
    return found


def run_operation(sender: Sender, operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        sender.exercise(operation, case)

    run()


def test_a_number_anywhere_is_refused_and_never_stored_or_logged(
    live: str, creds: Credentials, logs: Collect, db_url: str
) -> None:
    assert is_valid_my_number(N)
    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    sender = Sender(live, creds)
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        run_operation(sender, operation)
    sender.http.close()
    print(f"{operations} operations, {sender.sent} requests")
    assert operations >= 20 and sender.sent > 5 * operations
    assert not sender.failures, "\n".join(sender.failures[:40])

    # nothing stored: the scan first proves it can find a number, then finds none
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE screen_canary (note text)")
        conn.execute("INSERT INTO screen_canary VALUES (%s)", [f"{A}.{B}.{C}"])
        assert scan_database(conn) == ["screen_canary.note"]
        conn.execute("DROP TABLE screen_canary")
        assert scan_database(conn) == []
    # nothing logged: the access log saw every refused request, masked
    access = [line for line in logs.lines if '" 422' in line]
    assert len(access) >= sender.sent // 2, "the access log did not record the requests"
    leaked = [line[:120] for line in logs.lines if looks_like_my_number(without_random_ids(line))]
    assert leaked == []

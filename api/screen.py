"""The request screen: one pure ASGI layer in front of every route.

Before routing, every request is screened for the Individual Number (My Number; the rule
is in :mod:`mobility.fares.mynumber`) in its raw and percent-decoded path, its query
string, the headers that can reach a log, and its body whatever the declared type: JSON
(any ``*/json`` or ``+json`` type in any case, and undeclared bodies, which FastAPI parses
as JSON) walked value by value with numbers counted, form data (urlencoded and multipart)
and any other bytes read as UTF-8, UTF-16/32 and percent-decoded text. A match is refused
with a 422 problem that names where, never what; the request never reaches a route, so
nothing is stored and only the access log sees it, which masks the path
(:class:`AccessLogFilter`).

The body is read here up to ``MEBUKU_API_MAX_BODY_BYTES`` (413 beyond) and replayed to the
app. Responses are checked too: a header value with CR, LF or NUL is never sent (500).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.i18n import DEFAULT_LANG, L_, Lang, gettext, negotiate
from core.web import PROBLEM_BASE, SCREENED_SCOPE_KEY
from mobility.fares.mynumber import find_my_number_fields, json_pairs, looks_like_my_number, mask

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
REFUSED = "individual-number-refused"
REFUSED_TITLE = "Individual Numbers are not accepted"
REFUSED_DETAIL = (
    "This service never accepts the 12-digit Individual Number (My Number), in any field,"
    " path, query, header or body. Remove it; sign in with the card's certificate instead."
)
# Headers that a log line, a proxy log or a stored value can carry. Credentials are not
# screened (random secrets) and neither are framing headers the app never keeps.
NOT_SCREENED_HEADERS = frozenset(
    {b"authorization", b"x-api-key", b"cookie", b"content-length", b"transfer-encoding"}
)
DECODE_ROUNDS = 3  # percent-decoding repeated, so %2531 is seen as 1
THREAD_BODY_BYTES = 64 * 1024  # larger bodies are screened in a worker thread
_ASCII_DIGITS = "0123456789"
_DIGIT_BYTES = tuple(bytes([d]) for d in b"0123456789")
_EXPONENT = re.compile(rb"[0-9][eE]")


def _decoded(text: str, plus: bool = False) -> Iterable[str]:
    """``text`` and its percent-decoded forms (repeated while anything changes)."""
    yield text
    for _ in range(DECODE_ROUNDS):
        if "%" not in text and not (plus and "+" in text):
            return
        nxt = unquote_plus(text) if plus else unquote(text)
        if nxt == text:
            return
        text = nxt
        yield text


def too_few_digits(text: str) -> bool:
    """True when ``text`` provably holds no Individual Number in any decoded form: ASCII
    (normalisation leaves it as it is), no ``%`` (nothing to percent-decode into a digit)
    and fewer than 12 digits in all. Most headers, paths and queries; checked first
    because it costs far less than normalising and searching each decoded form."""
    return text.isascii() and "%" not in text and sum(map(text.count, _ASCII_DIGITS)) < 12


def _any_text(texts: Iterable[str], plus: bool = False) -> bool:
    return any(
        looks_like_my_number(v) for t in texts if not too_few_digits(t) for v in _decoded(t, plus)
    )


def screen_target(raw_path: bytes, path: str, query: bytes) -> list[str]:
    """Where in the URL a number was found: ``path``, ``query``."""
    where: list[str] = []
    if _any_text([raw_path.decode("utf-8", "replace"), path]):
        where.append("path")
    q = query.decode("utf-8", "replace")
    if q and (
        _any_text([q], plus=True)
        or _any_text(v for pair in parse_qsl(q, keep_blank_values=True) for v in pair)
    ):
        where.append("query")
    return where


def screen_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """``header.<name>`` for each screened header holding a number (name and value)."""
    where: list[str] = []
    for name, value in headers:
        if name.lower() in NOT_SCREENED_HEADERS:
            continue
        if _any_text([value.decode("latin-1"), value.decode("utf-8", "replace")]):
            where.append(f"header.{name.decode('latin-1').lower()}")
        elif _any_text([name.decode("latin-1")]):
            where.append("header.<name>")
    return sorted(set(where))


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    main, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        k, _, v = part.partition("=")
        if k.strip():
            params[k.strip().lower()] = v.strip().strip('"')
    return main.strip().lower(), params


def _is_json(media_type: str) -> bool:
    return media_type == "" or media_type.endswith("/json") or media_type.endswith("+json")


def _json_value(body: bytes) -> tuple[bool, Any]:
    """``(True, value)`` when the body is JSON the way the app reads it (UTF-8/16/32)."""
    try:
        return True, json.loads(body, parse_float=Decimal, object_pairs_hook=json_pairs)
    except (ValueError, RecursionError):
        return False, None


def _text_views(body: bytes, charset: str | None) -> Iterable[str]:
    """The body as the app or a reader could decode it."""
    yield body.decode("utf-8-sig", "replace")
    if charset:
        try:
            codecs.lookup(charset)
            yield body.decode(charset, "replace")
        except (LookupError, ValueError):
            pass
    if b"\x00" in body or body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encodings = ["utf-16"] if body[:2] in (b"\xff\xfe", b"\xfe\xff") else []
        encodings = encodings or ["utf-16-le", "utf-16-be"]
        if b"\x00\x00" in body:
            encodings += ["utf-32-le", "utf-32-be"]
        for enc in encodings:
            yield body.decode(enc, "replace")
        yield body.replace(b"\x00", b"").decode("latin-1")


def literal_json_clean(body: bytes) -> bool:
    """True when a body, if it is JSON, provably holds no Individual Number: ASCII, no
    escapes (no backslash), no exponent (``1e11``) and fewer than 12 digits in all. Every key,
    string and number of such JSON is then a literal slice of these bytes, none of which
    can hold 12 digits; the full walk of :func:`screen_body` would find nothing."""
    return (
        body.isascii()
        and b"\\" not in body
        and sum(map(body.count, _DIGIT_BYTES)) < 12
        and _EXPONENT.search(body) is None
    )


def screen_body(body: bytes, content_type: str) -> list[str]:
    """``body.<field>`` for JSON fields holding a number, or ``body`` for other bodies."""
    if not body:
        return []
    media_type, params = _media_type(content_type)
    if _is_json(media_type) and literal_json_clean(body):
        try:
            json.loads(body)
            return []  # valid JSON, read by the app as exactly these clean bytes
        except (ValueError, RecursionError):
            pass  # not JSON: screened as text below
    if _is_json(media_type) or not media_type.startswith(("multipart/", "application/x-www")):
        ok, value = _json_value(body)
        if ok:
            fields = find_my_number_fields(value)
            if fields:
                return sorted({"body" if f == "$" else f"body.{f}" for f in fields})
            if _is_json(media_type):
                return []  # the app reads exactly this value, and it is clean
    form = media_type == "application/x-www-form-urlencoded"
    views = list(_text_views(body, params.get("charset")))
    if _any_text(views, plus=form):
        return ["body"]
    return []


def problem_body(status: int, slug: str, title: str, detail: str, **extra: Any) -> bytes:
    """A problem document built without FastAPI, as the screen refuses requests before routing."""
    doc: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    doc.update(extra)
    return json.dumps(doc, ensure_ascii=False).encode()


async def send_problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    lang: Lang = DEFAULT_LANG,
    **extra: Any,
) -> None:
    """Answer with a problem straight on the ASGI channel (the screen runs before any router),
    its title and detail in ``lang`` like every other problem (``type`` never changes)."""
    body = problem_body(status, slug, gettext(title, lang), gettext(detail, lang), **extra)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"content-language", lang.encode()),
                (b"vary", b"Accept-Language"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def request_lang(scope: Scope) -> Lang:
    """The client's language from Accept-Language (Japanese when it asks for none we have)."""
    value = next((v for n, v in scope.get("headers", []) if n == b"accept-language"), b"")
    return negotiate(value.decode("latin-1") or None)


def has_nul(path: str, query: bytes, body: bytes, content_type: str) -> bool:
    """True when the request carries a NUL character anywhere the app reads text from.

    No text field of the platform may hold one (PostgreSQL text cannot), so refusing it here
    answers every route the same 422 (a value that is not allowed, like any validation
    error) instead of a database error deep inside one."""
    if "\x00" in path or b"\x00" in query or b"%00" in query:
        return True
    if "x-www-form-urlencoded" in content_type:
        return b"%00" in body or b"\x00" in body
    if "json" in content_type:
        return b"\x00" in body or b"\\u0000" in body.lower()
    return (content_type == "" or content_type.startswith("text/")) and b"\x00" in body


def unsafe_header(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when a response header name or value could split the response."""
    return any(b"\r" in n + v or b"\n" in n + v or b"\x00" in n + v for n, v in headers)


class RequestScreen:
    """Screens every HTTP request before routing; see the module docstring."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a request with unsafe text in its path, query, headers or body before routing."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        where = screen_target(
            scope.get("raw_path") or scope["path"].encode(),
            scope["path"],
            scope.get("query_string", b""),
        )
        where += screen_headers(scope.get("headers", []))
        if scope["type"] == "websocket":
            if where:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        body, outcome = await self._read_body(scope, receive)
        if outcome == "gone":
            return  # the client went away before sending its body: nothing to answer
        if outcome == "too-large":
            lang = request_lang(scope)
            await send_problem(
                send,
                413,
                "payload-too-large",
                "Request body too large",
                gettext("The limit is {n} bytes.", lang).format(n=self.max_body_bytes),
                lang=lang,
                instance=masked_path(scope["path"]),
            )
            return
        content_type = next(
            (v.decode("latin-1") for n, v in scope.get("headers", []) if n == b"content-type"),
            "",
        )
        if not where:
            if len(body) > THREAD_BODY_BYTES:  # keep the event loop serving small requests
                where = await asyncio.to_thread(screen_body, body, content_type)
            else:
                where = screen_body(body, content_type)
        if where:
            log.info(L_("request refused: Individual Number in %s"), ", ".join(sorted(set(where))))
            await send_problem(
                send,
                422,
                REFUSED,
                REFUSED_TITLE,
                REFUSED_DETAIL,
                lang=request_lang(scope),
                instance=masked_path(scope["path"]),
                fields=sorted(set(where)),
            )
            return
        # after the Individual Number screen: a request with both gets the 422 it must
        if has_nul(scope["path"], scope.get("query_string", b""), body, content_type):
            await send_problem(
                send,
                422,
                "nul-character",
                "Text may not contain a NUL character",
                "Remove the NUL (0x00, %00 or \\u0000) character from the request.",
                lang=request_lang(scope),
                instance=masked_path(scope["path"]),
            )
            return
        scope[SCREENED_SCOPE_KEY] = True  # domains' second-line screens may skip
        await self.app(scope, self._replay(body, receive), self._checked(send))

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, str]:
        """The whole body and ``ok``, or ``too-large`` (by Content-Length or while
        streaming), or ``gone`` (the client disconnected)."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return b"", "too-large"
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"", "gone"
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", "too-large"
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), "ok"

    @staticmethod
    def _replay(body: bytes, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    def _checked(send: Send) -> Send:
        blocked = False

        async def checked(message: Message) -> None:
            nonlocal blocked
            if message["type"] == "http.response.start" and unsafe_header(
                message.get("headers", [])
            ):
                blocked = True
                log.error(
                    L_("response header with CR/LF/NUL blocked (status %s)"), message["status"]
                )
                await send_problem(
                    send, 500, "internal-error", "Internal server error", "Response refused."
                )
                return
            if blocked:
                return
            await send(message)

        return checked


def masked_path(path: str) -> str:
    """The path fully percent-decoded and normalised, with 12-digit runs masked (for logs
    and the problem's ``instance``)."""
    for form in _decoded(path):
        path = form
    return mask(path)


class AccessLogFilter(logging.Filter):
    """Access-log lines keep the path only, with every 12-digit run masked.

    A query string may carry personal data, so it is dropped; the path is normalised and
    percent-decoded before masking so that ``%31%32...`` or full-width digits are caught.
    The client address is masked too: behind a trusted proxy it comes from
    ``X-Forwarded-For``, which the client writes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the access-log arguments to the masked client and path."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            # Text that cannot hold 12 digits in any form (nearly every line) masks to
            # itself: skip normalising and decoding it.
            client = args[0]
            if isinstance(client, str) and not too_few_digits(client):
                client = mask(client)
            path = args[2].split("?", 1)[0]
            if not too_few_digits(path):
                path = masked_path(path)
            record.args = (client, args[1], path, *args[3:])
        return True

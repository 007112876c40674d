"""The portal's HTTP plumbing: templates, the session cookie, CSRF, per-device display
preferences and the signed-in resident.

Residents browse with a cookie, not a bearer header: the cookie holds an ordinary resident
session token (``core.sessions``), so sign-out, revocation of a card (the fares package's
session check) and expiry work exactly as for the API. Cookies are HttpOnly,
SameSite=Strict and Secure when the request came over TLS; every POST form carries a CSRF
token that must match the device's CSRF cookie (double submit, compared in constant time).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from ipaddress import ip_address, ip_network
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg import AsyncConnection

from core.i18n import Lang, as_lang, negotiate, translator
from core.sessions import lookup_session
from core.web import Principal, Role
from portal.words import stop_label, yen

SESSION_COOKIE = "mebuku_portal"
CSRF_COOKIE = "mebuku_csrf"
LANG_COOKIE = "mebuku_lang"
DISPLAY_COOKIE = "mebuku_display"
YEAR_S = 365 * 24 * 3600
TEXT_SIZES = ("normal", "large", "larger")
MAX_FORM_BYTES = 64_000


@dataclass(frozen=True)
class Display:
    """Per-device display preferences (a cookie): text size, high contrast, easy Japanese."""

    text: str = "normal"
    contrast: bool = False
    easy: bool = False

    def cookie(self) -> str:
        """The choices as one short cookie value, so the device remembers them."""
        return f"{self.text}.{int(self.contrast)}.{int(self.easy)}"


def parse_display(value: str | None) -> Display:
    """The display cookie (``text.contrast.easy``); anything unreadable is the default."""
    parts = (value or "").split(".")
    if len(parts) != 3 or parts[0] not in TEXT_SIZES:
        return Display()
    return Display(parts[0], parts[1] == "1", parts[2] == "1")


def request_lang(request: Request) -> Lang:
    """The page language: the device's choice (cookie), else Accept-Language, else ja."""
    chosen = as_lang(request.cookies.get(LANG_COOKIE))
    return chosen or negotiate(request.headers.get("accept-language"))


def safe_next(path: str | None, default: str = "/my/") -> str:
    """A local path to return to (never another site: no scheme, no //, no backslash)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    if not (path.startswith("/my/") or path.startswith("/stops/")):
        return default
    return path


def is_tls(request: Request) -> bool:
    """Whether the page was served over TLS (then every cookie is Secure): directly, or
    through a trusted reverse proxy (``MEBUKU_API_TRUSTED_PROXIES``) that says so."""
    if request.url.scheme == "https":
        return True
    if request.headers.get("x-forwarded-proto", "").strip().lower() != "https":
        return False
    settings = getattr(request.app.state, "settings", None)
    proxies: list[str] = getattr(settings, "api_trusted_proxies", None) or []
    peer = request.client.host if request.client else ""
    return behind_trusted_proxy(peer, proxies)


def behind_trusted_proxy(peer: str, proxies: list[str]) -> bool:
    """Whether ``peer`` is one of the trusted proxies (addresses or networks)."""
    try:
        addr = ip_address(peer)
    except ValueError:
        return False
    return any(addr in ip_network(p, strict=False) for p in proxies)


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None
) -> None:
    """One cookie with the portal's attributes: HttpOnly, SameSite=Strict, Secure on TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )


def csrf_token(request: Request) -> str:
    """This device's CSRF token (made on first use, stored on the request until sent)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "portal_csrf", None)
    if not token or len(token) < 20:
        token = secrets.token_urlsafe(24)
    request.state.portal_csrf = token
    return str(token)


class FormError(Exception):
    """A form the portal refuses (bad CSRF token, too large, not a form)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request) -> dict[str, str]:
    """The POSTed form (application/x-www-form-urlencoded) after the CSRF check."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("application/x-www-form-urlencoded"):
        raise FormError(415, "Send the form as application/x-www-form-urlencoded.")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise FormError(413, "The form is too large.")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "The form could not be read.") from None
    form = {k: v[-1] for k, v in parsed.items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise FormError(403, "This form has expired. Please open the page again and resend.")
    return form


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment over the templates shipped in the package (autoescaped)."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yen"] = yen
    return env


def _load_template(name: str) -> str:
    return resources.files("portal").joinpath("templates", name).read_text("utf-8")


@dataclass
class Page:
    """What every template gets besides its own values."""

    request: Request
    lang: Lang
    display: Display
    resident_id: int | None
    counter: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def translate(lang: Lang, easy: bool) -> Callable[[str], str]:
    """``_`` for templates: in easy-Japanese mode the ``easy`` context wins when present."""
    t = translator(lang)
    if not (easy and lang == "ja"):
        return t.gettext

    def easy_gettext(message: str) -> str:
        got = t.pgettext("easy", message)
        return got if got != message else t.gettext(message)

    return easy_gettext


def fmt_date(lang: Lang, d: date | datetime) -> str:
    """A date people read: 2026年12月1日 / 1 Dec 2026 (Japan time for datetimes)."""
    from mobility.fares.rules import JST

    if isinstance(d, datetime):
        d = d.astimezone(JST)
    if lang == "ja":
        return f"{d.year}年{d.month}月{d.day}日"
    return d.strftime("%-d %b %Y")


def fmt_time(d: datetime) -> str:
    """Japan time HH:MM."""
    from mobility.fares.rules import JST

    return d.astimezone(JST).strftime("%H:%M")


def fmt_month(lang: Lang, d: date) -> str:
    """2026年11月 / November 2026."""
    return f"{d.year}年{d.month}月" if lang == "ja" else d.strftime("%B %Y")


def render(page: Page, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """A page in the device's language and display mode, with the CSRF cookie set."""
    env = environment()
    _ = translate(page.lang, page.display.easy)
    html = env.get_template(template).render(
        _=_,
        gettext=_,
        lang=page.lang,
        display=page.display,
        signed_in=page.resident_id is not None,
        counter=page.counter,
        csrf=csrf_token(page.request),
        path=page.request.url.path,
        query=page.request.url.query,
        fmt_date=lambda d: fmt_date(page.lang, d),
        fmt_time=fmt_time,
        fmt_month=lambda d: fmt_month(page.lang, d),
        urlencode=urlencode,
        stop_label=lambda stop: stop_label(stop, _),
        **page.extra,
        **values,
    )
    resp = HTMLResponse(html, status_code=status)
    secure_headers(resp)
    if request_csrf_is_new(page.request):
        set_cookie(resp, page.request, CSRF_COOKIE, csrf_token(page.request), None)
    return resp


def request_csrf_is_new(request: Request) -> bool:
    """Whether this response must set the CSRF cookie (a new token was made)."""
    return request.cookies.get(CSRF_COOKIE) != getattr(request.state, "portal_csrf", None)


def secure_headers(resp: Response) -> None:
    """No third-party anything: a strict CSP, no framing, no referrer to other sites."""
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"


def redirect(url: str) -> RedirectResponse:
    """303 See Other after a POST (the browser then GETs the page)."""
    resp = RedirectResponse(url, status_code=303)
    secure_headers(resp)
    return resp


async def cookie_principal(request: Request, conn: AsyncConnection) -> Principal | None:
    """The resident of the session cookie, checked as the API checks a bearer token
    (unexpired, not signed out, and every domain's session check, e.g. a revoked card),
    on the request's own connection (one pool connection per request)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    live = await lookup_session(conn, token)
    if live is None:
        return None
    for check in getattr(request.app.state, "session_checks", ()):
        if not await check(request, conn, live):
            return None
    rid = live.resident_id
    return Principal(role=Role.RESIDENT, subject=str(rid), resident_id=rid)


def query_string(**params: str) -> str:
    """``?a=b`` for non-empty values (links between pages)."""
    kept = {k: v for k, v in params.items() if v}
    return "?" + urlencode(kept) if kept else ""

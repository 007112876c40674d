"""The resident portal's pages (server-rendered HTML under ``/my/`` and ``/stops/``).

Every route is declared ``public`` at the API level (a browser sends no bearer header);
pages that show a resident's data check the session cookie themselves
(:func:`portal.web.cookie_principal`: the same session checks as a bearer token) and send
anyone else to the sign-in page. A resident only ever sees data of ``principal.resident_id``. All
wording comes from the catalogue (Japanese first); pages carry no third-party content.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from psycopg import AsyncConnection

from core.extras import missing
from core.i18n import L_, N_, as_lang, gettext_for
from core.settings import Settings, get_settings
from core.web import Authenticator, Principal, Role, auth_rate_limit, db_conn, public
from mobility.fares import cards, history, ledger, residents
from mobility.fares.policy import NoPolicyError, load_policies
from mobility.fares.rules import local_day
from portal import counter, notices, signin, stops, store, words
from portal.web import (
    DISPLAY_COOKIE,
    LANG_COOKIE,
    SESSION_COOKIE,
    YEAR_S,
    Display,
    FormError,
    Page,
    cookie_principal,
    fmt_time,
    parse_display,
    read_form,
    redirect,
    render,
    request_lang,
    safe_next,
    set_cookie,
)

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(public)], include_in_schema=False)
Conn = Annotated[AsyncConnection, Depends(db_conn)]

CARD_STATUS_WORDS = {
    "active": N_("in use"),
    "lost": N_("reported lost"),
    "unlinked": N_("unlinked"),
    "reassigned": N_("moved to its holder by the city office"),
}


def _settings(request: Request) -> Settings:
    s: Settings | None = getattr(request.app.state, "settings", None)
    return s if s is not None else get_settings()


async def _page(request: Request, principal: Principal | None = None) -> Page:
    session: counter.CounterSession | None = getattr(request.state, "portal_counter", None)
    banner = None
    if session is not None and principal is not None:
        banner = {
            "staff": session.staff,
            "until": fmt_time(session.expires_at),
            "until_iso": session.expires_at.isoformat(),
        }
    return Page(
        request=request,
        lang=request_lang(request),
        display=parse_display(request.cookies.get(DISPLAY_COOKIE)),
        resident_id=principal.resident_id if principal else None,
        counter=banner,
    )


async def _counter_session(
    request: Request, conn: AsyncConnection
) -> counter.CounterSession | None:
    token = request.cookies.get(counter.COUNTER_COOKIE)
    if not token or len(token) > 200:
        return None
    return await counter.lookup(conn, token)


async def _resident(request: Request, conn: AsyncConnection) -> Principal | None:
    """The resident whose pages these are: at a city counter the one whose card signed
    (every page view audited), else the resident of the session cookie."""
    session = await _counter_session(request, conn)
    if session is not None and session.resident_id is not None:
        request.state.portal_counter = session
        detail = f"{request.method} {request.url.path}"
        await counter.audit(conn, session.staff, session.resident_id, "view", detail)
        rid = session.resident_id
        return Principal(role=Role.RESIDENT, subject=str(rid), resident_id=rid)
    return await cookie_principal(request, conn)


def _to_signin(request: Request) -> Response:
    """Signed out: to the sign-in page (at a counter whose view ended: back to the counter)."""
    if request.cookies.get(counter.COUNTER_COOKIE):
        return redirect("/my/counter?ended=1")
    return redirect("/my/signin")


def _problem_page(page: Page, status: int, title: str, text: str, back: str = "/my/") -> Response:
    _ = gettext_for(page.lang)
    return render(page, "error.html", status=status, title=_(title), text=_(text), back=back)


async def _form(request: Request, page: Page) -> dict[str, str] | Response:
    try:
        return await read_form(request)
    except FormError as e:
        return _problem_page(page, e.status, N_("The form could not be sent"), e.message)


async def _signed_in_form(
    request: Request, conn: AsyncConnection
) -> tuple[int, Page, dict[str, str]] | Response:
    """A signed-in resident's form post: (resident id, page, fields), or the response to
    send instead (signed out: to sign-in; a refused form: its problem page)."""
    principal = await _resident(request, conn)
    if principal is None or principal.resident_id is None:
        return _to_signin(request)
    page = await _page(request, principal)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    return principal.resident_id, page, form


# ---------------------------------------------------------------- static files


def _static(name: str, media: str) -> Response:
    from importlib import resources

    body = resources.files("portal").joinpath("static", name).read_bytes()
    resp = Response(body, media_type=media)
    resp.headers["Cache-Control"] = "public, max-age=3600"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@router.get("/my/static/portal.css")
async def portal_css() -> Response:
    """The one stylesheet (no web fonts, no third parties)."""
    return _static("portal.css", "text/css; charset=utf-8")


@router.get("/my/static/portal.js")
async def portal_js() -> Response:
    """A few lines of progressive enhancement (the counter view's expiry warning)."""
    return _static("portal.js", "text/javascript; charset=utf-8")


# ---------------------------------------------------------------- sign-in


@router.get("/my/signin", response_class=HTMLResponse, dependencies=[Depends(auth_rate_limit)])
async def signin_page(request: Request, conn: Conn) -> Response:
    """Sign in with the My Number Card (a card app answers the challenge; in development
    the test card authority may play the card)."""
    page = await _page(request, await _resident(request, conn))
    if page.resident_id is not None:
        return redirect("/my/")
    settings = _settings(request)
    try:
        nonce = await signin.new_challenge(conn, settings)
    except signin.SignInUnavailableError as e:
        log.warning(L_("portal sign-in unavailable: %s"), e)
        return render(page, "signin.html", status=503, unavailable=True)
    return render(page, "signin.html", nonce=nonce, dev=signin.dev_authority(settings) is not None)


def _signed_in_response(request: Request, done: signin.SignedIn) -> Response:
    resp = redirect("/my/")
    max_age = max(60, int((done.expires_at - datetime.now(UTC)).total_seconds()))
    set_cookie(resp, request, SESSION_COOKIE, done.token, max_age)
    return resp


async def _refused(request: Request, page: Page, conn: AsyncConnection) -> Response:
    settings = _settings(request)
    _ = gettext_for(page.lang)
    try:
        nonce = await signin.new_challenge(conn, settings)
    except signin.SignInUnavailableError:
        return render(page, "signin.html", status=503, unavailable=True)
    return render(
        page,
        "signin.html",
        status=401,
        nonce=nonce,
        dev=signin.dev_authority(settings) is not None,
        error=_("The card could not sign you in. Please try again with a new request."),
    )


@router.post("/my/signin", response_class=HTMLResponse, dependencies=[Depends(auth_rate_limit)])
async def signin_submit(request: Request, conn: Conn) -> Response:
    """The card app's answer: certificate and signature over the page's nonce."""
    page = await _page(request)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    try:
        done = await signin.sign_in(
            conn,
            _settings(request),
            form.get("nonce", "")[:100],
            form.get("certificate", "")[:20_000],
            form.get("signature", "")[:2_000],
        )
    except signin.SignInRefusedError:
        return await _refused(request, page, conn)
    except signin.SignInUnavailableError:
        return render(page, "signin.html", status=503, unavailable=True)
    return _signed_in_response(request, done)


@router.post("/my/signin/dev", response_class=HTMLResponse, dependencies=[Depends(auth_rate_limit)])
async def signin_dev(request: Request, conn: Conn) -> Response:
    """Development only: the test card authority signs a fresh challenge for a test card,
    then the answer goes through the same verification as a real card's."""
    page = await _page(request)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    settings = _settings(request)
    ca = signin.dev_authority(settings)
    if ca is None:
        return _problem_page(
            page, 404, N_("Not found"), N_("There is no test card authority on this server.")
        )
    from mobility.fares.devcard import DevCardError

    try:
        nonce = await signin.new_challenge(conn, settings)
        cert, sig = await anyio.to_thread.run_sync(
            signin.dev_card_answer, ca, form.get("card", "")[:64], nonce
        )
        done = await signin.sign_in(conn, settings, nonce, cert, sig)
    except (DevCardError, signin.SignInRefusedError):
        return await _refused(request, page, conn)
    except signin.SignInUnavailableError:
        return render(page, "signin.html", status=503, unavailable=True)
    return _signed_in_response(request, done)


@router.post("/my/signout", response_class=HTMLResponse)
async def signout(request: Request, conn: Conn) -> Response:
    """End this session at once and forget the cookie."""
    page = await _page(request)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    from core.sessions import revoke_session

    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await revoke_session(conn, token[:200])
    at_counter = request.cookies.get(counter.COUNTER_COOKIE)
    if at_counter:
        await counter.end(conn, at_counter[:200])
    resp = redirect("/my/counter" if at_counter else "/my/signin")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    resp.delete_cookie(counter.COUNTER_COOKIE, path="/")
    return resp


# ---------------------------------------------------------------- language and display


@router.get("/my/lang")
async def switch_language(request: Request, to: str = "ja", next: str = "/my/") -> Response:
    """Switch the page language on this device (a link, so it works from every page)."""
    lang = as_lang(to) or "ja"
    resp = redirect(safe_next(next))
    set_cookie(resp, request, LANG_COOKIE, lang, YEAR_S)
    return resp


@router.get("/my/display", response_class=HTMLResponse)
async def display_page(request: Request, conn: Conn, next: str = "/my/") -> Response:
    """Text size, high contrast, easy Japanese and language, remembered on this device."""
    page = await _page(request, await _resident(request, conn))
    return render(page, "display.html", next=safe_next(next))


@router.post("/my/display", response_class=HTMLResponse)
async def display_save(request: Request) -> Response:
    """Store the display choices in cookies (nothing on the server)."""
    page = await _page(request)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    text = form.get("text", "normal")
    d = Display(
        text=text if text in ("normal", "large", "larger") else "normal",
        contrast=form.get("contrast") == "on",
        easy=form.get("easy") == "on",
    )
    resp = redirect(safe_next(form.get("next"), "/my/display"))
    set_cookie(resp, request, DISPLAY_COOKIE, d.cookie(), YEAR_S)
    set_cookie(resp, request, LANG_COOKIE, as_lang(form.get("lang")) or page.lang, YEAR_S)
    return resp


# ---------------------------------------------------------------- my MyTaku


@router.get("/my/", response_class=HTMLResponse)
async def home(request: Request, conn: Conn) -> Response:
    """My MyTaku: rides left today and this fiscal year, yen received, next resets, and
    why recent rides were or were not subsidised."""
    principal = await _resident(request, conn)
    if principal is None or principal.resident_id is None:
        return _to_signin(request)
    page = await _page(request, principal)
    rid = principal.resident_id
    now = datetime.now(UTC)
    today = local_day(now)
    book = load_policies()
    try:
        st = await ledger.subsidy_status(conn, rid, book, now)
        policy = book.mytaku_at(today)
    except NoPolicyError:
        return _problem_page(
            page, 503, N_("Service unavailable"), N_("No MyTaku policy is in force today.")
        )
    start, _end = words.month_bounds(words.add_months(today.replace(day=1), -1))
    recent = await history.taxi_trips(conn, rid, start, now + timedelta(days=1))
    _ = gettext_for(page.lang)
    eligible = words.ELIGIBLE_WORDS.get(st.eligible_as or "", st.eligible_as or "")
    return render(
        page,
        "home.html",
        resident_number=rid,
        st=st,
        policy=policy,
        per_day=policy.rides_per_day,
        per_year=policy.rides_per_fiscal_year,
        resets=words.next_resets(today),
        eligible_words=_(eligible) if eligible else "",
        recent=list(reversed(recent))[:5],
        words=words.reason_words,
    )


# ---------------------------------------------------------------- my rides


async def _month_rows(
    conn: AsyncConnection, rid: int, month: Any
) -> tuple[list[history.TaxiTrip], list[history.BusTrip], dict[str, str], dict[str, str]]:
    start, end = words.month_bounds(month)
    taxi = await history.taxi_trips(conn, rid, start, end)
    bus = await history.bus_trips(conn, rid, start, end)
    stop_ids = [s for b in bus for s in (b.origin_stop_id, b.dest_stop_id)]
    names = await stops.stop_names(conn, stop_ids)
    routes = await stops.route_names(conn, [b.route_id for b in bus])
    return taxi, bus, names, routes


@router.get("/my/rides", response_class=HTMLResponse)
async def rides(request: Request, conn: Conn, month: str = "") -> Response:
    """My taxi rides and bus taps of one month, with the discount applied and why."""
    principal = await _resident(request, conn)
    if principal is None or principal.resident_id is None:
        return _to_signin(request)
    page = await _page(request, principal)
    today = words.today_jst()
    try:
        m = words.parse_month(month, today)
    except ValueError:
        return _problem_page(
            page, 400, N_("Month must be YYYY-MM"), N_("Open the page from the menu."), "/my/rides"
        )
    taxi, bus, names, routes = await _month_rows(conn, principal.resident_id, m)
    nxt = words.add_months(m, 1)
    return render(
        page,
        "rides.html",
        month=m,
        prev=words.add_months(m, -1),
        next=nxt if nxt <= today else None,
        taxi=taxi,
        bus=bus,
        stops=names,
        routes=routes,
        totals=words.month_totals(taxi, bus),
        words=words.reason_words,
        discounts=words.DISCOUNT_WORDS,
    )


async def statement_pdf(
    conn: AsyncConnection, rid: int, month: Any, lang: Any, counter_staff: str | None = None
) -> bytes:
    """The statement PDF of one month (rendered in a worker thread)."""
    from portal.statement import StatementData, build_statement

    taxi, bus, names, routes = await _month_rows(conn, rid, month)
    data = StatementData(rid, month, taxi, bus, names, routes, datetime.now(UTC), counter_staff)
    return await anyio.to_thread.run_sync(build_statement, data, lang)


@router.get("/my/rides/statement.pdf")
async def statement(request: Request, conn: Conn, month: str = "") -> Response:
    """A printable monthly statement (PDF, in the page language; Japanese first)."""
    principal = await _resident(request, conn)
    if principal is None or principal.resident_id is None:
        return _to_signin(request)
    page = await _page(request, principal)
    try:
        m = words.parse_month(month, words.today_jst())
    except ValueError:
        return _problem_page(
            page, 400, N_("Month must be YYYY-MM"), N_("Open the page from the menu."), "/my/rides"
        )
    session: counter.CounterSession | None = getattr(request.state, "portal_counter", None)
    staff = session.staff if session is not None else None
    try:
        body = await statement_pdf(conn, principal.resident_id, m, page.lang, staff)
    except ModuleNotFoundError:  # the report extra (reportlab) is not installed
        log.warning(L_("statement PDF unavailable: %s"), missing("report", "reportlab"))
        return _problem_page(
            page,
            503,
            N_("The statement cannot be printed here"),
            N_("Ask at the city office; the rides above are what it would show."),
            "/my/rides",
        )
    if session is not None:
        await counter.audit(conn, session.staff, principal.resident_id, "statement", f"{m:%Y-%m}")
    resp = Response(body, media_type="application/pdf")
    resp.headers["Content-Disposition"] = f'inline; filename="statement-{m:%Y-%m}.pdf"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


# ---------------------------------------------------------------- my cards


async def _cards_page(
    request: Request, conn: AsyncConnection, page: Page, rid: int, status: int = 200, **kw: Any
) -> Response:
    book = load_policies()
    return render(
        page,
        "cards.html",
        status=status,
        cards=await cards.list_cards(conn, rid, True),
        status_words=CARD_STATUS_WORDS,
        max_cards=book.max_active_cards_at(local_day(datetime.now(UTC))),
        **kw,
    )


@router.get("/my/cards", response_class=HTMLResponse)
async def cards_page(request: Request, conn: Conn) -> Response:
    """My IC cards: link, report lost, unlink, with the rules explained."""
    principal = await _resident(request, conn)
    if principal is None or principal.resident_id is None:
        return _to_signin(request)
    page = await _page(request, principal)
    msg = {
        "linked": N_("The card is linked."),
        "lost": N_("The card is blocked as lost."),
        "unlinked": N_("The card is unlinked."),
    }.get(request.query_params.get("done", ""))
    _ = gettext_for(page.lang)
    return await _cards_page(
        request, conn, page, principal.resident_id, message=_(msg) if msg else None
    )


def _link_error(e: Exception) -> str:
    if isinstance(e, cards.CardTakenError):
        if e.mine:
            return N_("This card is already linked to you, or you reported it lost.")
        return N_(
            "This card is linked to another account or was reported lost. If it is yours,"
            " bring it and your My Number Card to the city office."
        )
    if isinstance(e, cards.CardLimitError):
        return N_("You already have the most cards you can link. Unlink one first.")
    return N_("A card number is 16 letters (A to F) and digits.")


LINKS_PER_HOUR = 10


def _link_allowed(request: Request, rid: int) -> bool:
    """Linking attempts per resident: 10 an hour (as the API's limit), so nobody can probe
    which card numbers are taken through the page."""
    import time

    state = request.app.state
    tries: dict[int, list[float]] = getattr(state, "portal_link_tries", None) or {}
    state.portal_link_tries = tries
    now = time.monotonic()
    recent = [t for t in tries.get(rid, []) if now - t < 3600]
    if len(recent) >= LINKS_PER_HOUR:
        tries[rid] = recent
        return False
    tries[rid] = [*recent, now]
    return True


@router.post("/my/cards", response_class=HTMLResponse)
async def link_card(request: Request, conn: Conn) -> Response:
    """Link a card by its IDm (the same rules as ``POST /v1/me/cards``)."""
    signed = await _signed_in_form(request, conn)
    if isinstance(signed, Response):
        return signed
    rid, page, form = signed
    _ = gettext_for(page.lang)
    raw = form.get("idm", "")[:40]
    if not _link_allowed(request, rid):
        return await _cards_page(
            request,
            conn,
            page,
            rid,
            429,
            idm=raw,
            error=_("Too many tries. Please wait an hour and try again."),
        )
    limit = load_policies().max_active_cards_at(local_day(datetime.now(UTC)))
    try:
        idm = cards.normalise_idm(raw)
        await cards.link_card(conn, _settings(request).require_pseudonym_key(), rid, idm, limit)
    except (ValueError, cards.CardTakenError, cards.CardLimitError) as e:
        status = 422 if isinstance(e, ValueError) else 409
        return await _cards_page(request, conn, page, rid, status, idm=raw, error=_(_link_error(e)))
    return redirect("/my/cards?done=linked")


async def _end_card(request: Request, conn: AsyncConnection, card_id: int, how: str) -> Response:
    signed = await _signed_in_form(request, conn)
    if isinstance(signed, Response):
        return signed
    rid, page, form = signed
    _ = gettext_for(page.lang)
    if how == "lost" and form.get("confirm") != "yes":
        return await _cards_page(
            request,
            conn,
            page,
            rid,
            422,
            error=_("Tick the box to confirm that you lost the card."),
        )
    if not (1 <= card_id < 2**62) or not await cards.end_card(conn, rid, card_id, how):
        return await _cards_page(
            request, conn, page, rid, 404, error=_("That card is not in use on your account.")
        )
    log.info(L_("resident %s ended card %s on the portal (%s)"), rid, card_id, how)
    return redirect(f"/my/cards?done={how}")


@router.post("/my/cards/{card_id}/lost", response_class=HTMLResponse)
async def report_lost(card_id: int, request: Request, conn: Conn) -> Response:
    """Block a lost card for everyone (after a confirmation tick)."""
    return await _end_card(request, conn, card_id, "lost")


@router.post("/my/cards/{card_id}/unlink", response_class=HTMLResponse)
async def unlink(card_id: int, request: Request, conn: Conn) -> Response:
    """Unlink a card (it may be linked again later)."""
    return await _end_card(request, conn, card_id, "unlinked")


# ---------------------------------------------------------------- stops and fares


@router.get("/stops/", response_class=HTMLResponse)
async def stops_page(request: Request, conn: Conn, q: str = "") -> Response:
    """Find a stop by name (no sign-in needed)."""
    page = await _page(request, await _resident(request, conn))
    found = await stops.find_stops(conn, q) if q.strip() else []
    return render(page, "stops.html", q=q[:50], found=found)


@router.get("/stops/fare", response_class=HTMLResponse)
async def fare_page(
    request: Request,
    conn: Conn,
    origin: Annotated[str, Query(alias="from", max_length=200)] = "",
    to: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The fare between two stops (by name), with my discount when signed in."""
    origin = origin[:50].strip()
    dest = to[:50].strip()
    principal = await _resident(request, conn)
    page = await _page(request, principal)
    if not origin or not dest:
        return render(page, "stops.html", origin=origin, dest=dest)
    birth = None
    if principal is not None and principal.resident_id is not None:
        facts = (await residents.facts_of(conn, [principal.resident_id]))[principal.resident_id]
        birth = residents.birth_date_of(facts)
    now = datetime.now(UTC)
    o_stops = [s for s in await stops.find_stops(conn, origin) if s.name == origin]
    d_stops = [s for s in await stops.find_stops(conn, dest) if s.name == dest]
    fares: dict[str, stops.Fare] = {}
    for o in o_stops:
        for d in d_stops:
            for f in await stops.fares_between(conn, o.stop_id, d.stop_id, birth=birth, now=now):
                fares.setdefault(f.route.route_id, f)
    _ = gettext_for(page.lang)
    error_text = ""
    o_choices: list[stops.Stop] = []
    d_choices: list[stops.Stop] = []
    if not fares:
        if not o_stops or not d_stops:
            o_choices = [] if o_stops else (await stops.find_stops(conn, origin))[:10]
            d_choices = [] if d_stops else (await stops.find_stops(conn, dest))[:10]
            error_text = (
                _("No stop has exactly that name. Choose one of these stops:")
                if o_choices or d_choices
                else _("No stop has that name. Try a shorter part of the name.")
            )
        else:
            error_text = _("No bus runs directly from {a} to {b}.").format(a=origin, b=dest)
    return render(
        page,
        "fare.html",
        origin=origin,
        dest=dest,
        fares=list(fares.values()),
        discounts=words.DISCOUNT_WORDS,
        error_text=error_text,
        origin_choices=o_choices,
        dest_choices=d_choices,
    )


@router.get("/stops/{stop_id}", response_class=HTMLResponse)
async def stop_page(stop_id: str, request: Request, conn: Conn) -> Response:
    """The next buses at a stop, with live delays where a vehicle reports."""
    principal = await _resident(request, conn)
    page = await _page(request, principal)
    stop = await stops.get_stop(conn, stop_id)
    if stop is None:
        return _problem_page(
            page, 404, N_("Not found"), N_("There is no such stop in the timetable."), "/stops/"
        )
    now = datetime.now(UTC)
    buses = await stops.next_buses(conn, stop.stop_id, now=now)
    ends = await stops.timetable_ends(conn)
    saved = False
    if principal is not None and principal.resident_id is not None:
        saved = stop.stop_id in await store.saved_stops(conn, principal.resident_id)
    return render(
        page,
        "stop.html",
        stop=stop,
        buses=buses,
        now=now,
        expired=ends if ends is not None and ends < local_day(now) else None,
        saved=saved,
    )


@router.post("/my/stops", response_class=HTMLResponse)
async def save_stop(request: Request, conn: Conn) -> Response:
    """Save or forget a stop (for late-bus notices and quick access)."""
    signed = await _signed_in_form(request, conn)
    if isinstance(signed, Response):
        return signed
    rid, page, form = signed
    stop = await stops.get_stop(conn, form.get("stop_id", "")[:200])
    if stop is None:
        return _problem_page(
            page, 404, N_("Not found"), N_("There is no such stop in the timetable."), "/stops/"
        )
    if form.get("action") == "remove":
        await store.remove_stop(conn, rid, stop.stop_id)
    elif not await store.save_stop(conn, rid, stop.stop_id):
        return _problem_page(
            page, 409, N_("Too many saved stops"), N_("Remove a saved stop first."), "/my/notices"
        )
    from urllib.parse import quote

    return redirect(f"/stops/{quote(stop.stop_id, safe='')}")


# ---------------------------------------------------------------- notice settings


@router.get("/my/notices", response_class=HTMLResponse)
async def notices_page(request: Request, conn: Conn) -> Response:
    """Which notices I want (per type, with thresholds) and my saved stops."""
    principal = await _resident(request, conn)
    if principal is None or principal.resident_id is None:
        return _to_signin(request)
    page = await _page(request, principal)
    rid = principal.resident_id
    ids = await store.saved_stops(conn, rid)
    names = await stops.stop_names(conn, ids)
    _ = gettext_for(page.lang)
    done = request.query_params.get("done") == "saved"
    return render(
        page,
        "notices.html",
        quiet=await notices.quiet_hours(conn, rid),
        vapid_key=_vapid_public(request),
        devices=len(await notices.subscriptions(conn, rid)),
        prefs=await store.notice_prefs(conn, rid),
        saved=await stops.told_apart(conn, [stops.Stop(i, names.get(i, i), None) for i in ids]),
        message=_("Your notice settings are saved.") if done else None,
    )


@router.post("/my/notices", response_class=HTMLResponse)
async def notices_save(request: Request, conn: Conn) -> Response:
    """Store the opt-ins (delivery uses them)."""
    signed = await _signed_in_form(request, conn)
    if isinstance(signed, Response):
        return signed
    rid, _, form = signed
    await store.save_notice_prefs(conn, rid, store.parse_notice_form(form))
    quiet = _quiet_from_form(form)
    if quiet is not None:
        await notices.save_quiet_hours(conn, rid, *quiet)
    return redirect("/my/notices?done=saved")


def _quiet_from_form(form: dict[str, str]) -> tuple[time, time] | None:
    try:
        return time.fromisoformat(form["quiet_from"]), time.fromisoformat(form["quiet_to"])
    except (KeyError, ValueError):
        return None


def _vapid_public(request: Request) -> str | None:
    """The applicationServerKey for browsers, when a VAPID key is configured."""
    key = _settings(request).portal_vapid_private_key
    if key is None:
        return None
    cached: tuple[str, str] | None = getattr(request.app.state, "portal_vapid", None)
    secret = key.get_secret_value()
    if cached is None or cached[0] != secret:
        from portal.push import load_vapid, public_key_b64

        cached = (secret, public_key_b64(load_vapid(secret)))
        request.app.state.portal_vapid = cached
    return cached[1]


@router.get("/my/sw.js")
async def service_worker() -> Response:
    """The service worker that shows pushed notices (scope /my/)."""
    resp = _static("sw.js", "text/javascript; charset=utf-8")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


_B64U = re.compile(r"^[A-Za-z0-9_-]+$")


@router.post("/my/push/subscribe", response_class=HTMLResponse)
async def push_subscribe(request: Request, conn: Conn) -> Response:
    """Store this device's push subscription (sent by the notices page's script)."""
    principal = await _resident(request, conn)
    if principal is None or principal.resident_id is None:
        return Response(status_code=401)
    page = await _page(request, principal)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    endpoint, p256dh, auth = form.get("endpoint", ""), form.get("p256dh", ""), form.get("auth", "")
    valid = (
        endpoint.startswith(("https://", "http://"))
        and len(endpoint) <= 2000
        and 80 <= len(p256dh) <= 100
        and 16 <= len(auth) <= 30
        and bool(_B64U.match(p256dh) and _B64U.match(auth))
    )
    if not valid:
        return _problem_page(
            page,
            422,
            N_("The form could not be sent"),
            N_("This browser could not turn on notices."),
            "/my/notices",
        )
    await notices.subscribe(conn, principal.resident_id, endpoint, p256dh, auth, page.lang)
    return Response(status_code=204)


# ---------------------------------------------------------------- counter assistance


def _counter_cookie(resp: Response, request: Request, token: str) -> None:
    set_cookie(resp, request, counter.COUNTER_COOKIE, token, int(counter.MAX_TOTAL.seconds))


@router.get("/my/counter", response_class=HTMLResponse)
async def counter_page(request: Request, conn: Conn) -> Response:
    """City staff: start a counter session, then the resident's card signs at the reader."""
    page = await _page(request)
    session = await _counter_session(request, conn)
    settings = _settings(request)
    values: dict[str, Any] = {"session": session, "dev": False, "nonce": ""}
    if session is not None:
        values["until"] = fmt_time(session.expires_at)
        try:
            values["nonce"] = await signin.new_challenge(conn, settings)
        except signin.SignInUnavailableError:
            values["unavailable"] = True
        values["dev"] = signin.dev_authority(settings) is not None
    ended = request.query_params.get("ended") == "1"
    _ = gettext_for(page.lang)
    return render(
        page,
        "counter.html",
        message=_("The counter view has ended.") if ended else None,
        **values,
    )


@router.post(
    "/my/counter/start", response_class=HTMLResponse, dependencies=[Depends(auth_rate_limit)]
)
async def counter_start(request: Request) -> Response:
    """Staff sign in with their admin API key, checked by the API's own authenticator on
    a pool connection that is given back before the rest of the page's work."""
    page = await _page(request)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    authenticator: Authenticator = request.app.state.authenticate
    async with request.app.state.pool.connection() as conn:
        key = form.get("api_key", "")[:200] or None
        staff = await authenticator(request, conn, None, key)
    if staff is None or staff.role is not Role.ADMIN:
        _ = gettext_for(page.lang)
        log.info(L_("counter session refused: not an admin key"))
        return render(
            page,
            "counter.html",
            status=403,
            session=None,
            error=_("This key is not a city staff key."),
        )
    async with request.app.state.pool.connection() as conn:
        token = await counter.start(conn, f"admin:{staff.subject}")
    resp = redirect("/my/counter")
    _counter_cookie(resp, request, token)
    return resp


async def _counter_answer(
    request: Request, conn: AsyncConnection, form: dict[str, str]
) -> tuple[bytes, Any] | None:
    """The resident's card answer at the counter (or the test card in development)."""
    settings = _settings(request)
    nonce, cert, sig = form.get("nonce", ""), form.get("certificate", ""), form.get("signature", "")
    card_name = form.get("card", "")
    if card_name:
        ca = signin.dev_authority(settings)
        if ca is None:
            return None
        from mobility.fares.devcard import DevCardError

        nonce = await signin.new_challenge(conn, settings)
        try:
            cert, sig = await anyio.to_thread.run_sync(
                signin.dev_card_answer, ca, card_name[:64], nonce
            )
        except DevCardError:
            return None
    try:
        return await signin.verify_answer(conn, settings, nonce[:100], cert[:20_000], sig[:2_000])
    except (signin.SignInRefusedError, signin.SignInUnavailableError):
        return None


@router.post(
    "/my/counter/card", response_class=HTMLResponse, dependencies=[Depends(auth_rate_limit)]
)
async def counter_card(request: Request, conn: Conn) -> Response:
    """The resident's card signed a fresh challenge: open their view (enrolling on first
    use, as a sign-in does)."""
    page = await _page(request)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    token = request.cookies.get(counter.COUNTER_COOKIE, "")[:200]
    session = await counter.lookup(conn, token) if token else None
    if session is None:
        return redirect("/my/counter?ended=1")
    answer = await _counter_answer(request, conn, form)
    if answer is None:
        await counter.audit(conn, session.staff, None, "card-refused")
        _ = gettext_for(page.lang)
        return render(
            page,
            "counter.html",
            status=401,
            session=session,
            nonce="",
            until=fmt_time(session.expires_at),
            error=_("The card could not sign you in. Please try again with a new request."),
        )
    cert_hash, not_after = answer
    rid, _enrolled = await residents.sign_in_resident(conn, cert_hash, not_after)
    await counter.attach_resident(conn, token, rid)
    return redirect("/my/")


@router.post("/my/counter/extend", response_class=HTMLResponse)
async def counter_extend(request: Request, conn: Conn) -> Response:
    """Another 15 minutes (at most an hour in all), so nobody is cut off mid-task."""
    page = await _page(request)
    form = await _form(request, page)
    if isinstance(form, Response):
        return form
    token = request.cookies.get(counter.COUNTER_COOKIE, "")[:200]
    if not token or await counter.extend(conn, token) is None:
        return redirect("/my/counter?ended=1")
    return redirect(safe_next(form.get("next")))

"""What the fares routers share: the request screen, credentials, settings, the JPKI trust
store, the road graph, and the OpenAPI entries for problems."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.routing import APIRoute
from psycopg import AsyncConnection

from core.i18n import L_
from core.operators import canonical_operator_id
from core.sessions import LiveSession, live_cert_hashes, revoke_cert_sessions
from core.settings import Settings, get_settings
from core.web import (
    SCREENED_SCOPE_KEY,
    Principal,
    ProblemError,
    Role,
    auth_rate_limit,
    db_conn,
    ensure_own_operator,
    public,
    require_roles,
)
from mobility.fares import ledger
from mobility.fares.guard import refuse_my_number, refuse_twelve_digit_ids
from mobility.fares.identity import (
    RevocationUnavailableError,
    TrustStore,
    check_store,
    issuer_serial_hash,
    load_trust_store,
    revoked_serials,
)
from mobility.fares.schemas import ID_PATTERN

log = logging.getLogger("mobility.fares.http")


async def screen_request(request: Request) -> None:
    """Refuse Individual Numbers anywhere in the request, before validation echoes them.

    The API's ASGI screen (``api/screen.py``) already refused them before routing; this is
    the second line should the router ever be mounted without it (that screen marks the
    requests it passed, :data:`core.web.SCREENED_SCOPE_KEY`).
    """
    if request.query_params:
        refuse_my_number(dict(request.query_params))
    if request.path_params:
        refuse_my_number(dict(request.path_params))
    if request.method in ("POST", "PUT", "PATCH") and request.headers.get(
        "content-type", ""
    ).startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return  # FastAPI reports the malformed JSON
        refuse_my_number(body)


class ScreenedRoute(APIRoute):
    """A fares route: :func:`screen_request` runs before anything else unless the API's
    ASGI screen already passed the request (then it would only find what that found).

    A wrapper rather than a dependency, so the common case costs one dictionary look-up
    instead of a dependency solve on every request.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler behind the second-line screen."""
        handler = super().get_route_handler()

        async def screened(request: Request) -> Response:
            if not request.scope.get(SCREENED_SCOPE_KEY):
                await screen_request(request)
            return await handler(request)

        return screened


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for problem statuses the API cannot infer from the route."""
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        s: {
            "description": "problem details",
            "content": {"application/problem+json": {"schema": ref}},
        }
        for s in statuses
    }


Conn = Annotated[AsyncConnection, Depends(db_conn)]
Resident = Annotated[Principal, Depends(require_roles(Role.RESIDENT))]
OperatorOrAdmin = Annotated[Principal, Depends(require_roles(Role.OPERATOR, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
PUBLIC_AUTH = [Depends(public), Depends(auth_rate_limit)]
OperatorId = Annotated[
    str,
    PathParam(
        pattern=ID_PATTERN,
        description="Operator id of core/operators.toml, or its corporate number",
        examples=["gunmachuo"],
    ),
]
RecordId = Annotated[str, PathParam(pattern=ID_PATTERN)]
RowId = Annotated[int, PathParam(ge=1, le=2**62)]


def settings_of(request: Request) -> Settings:
    """The app's settings (tests and tools that mount the router alone: the environment)."""
    s: Settings | None = getattr(request.app.state, "settings", None)
    return s if s is not None else get_settings()


def pseudonym_key(request: Request) -> bytes:
    """The key of every personal identifier's keyed hash (core/pseudonym.py)."""
    return settings_of(request).require_pseudonym_key()


def submission_window(request: Request) -> timedelta:
    """How long after a ride operators may submit it (MEBUKU_FARES_SUBMISSION_WINDOW_DAYS)."""
    return timedelta(days=settings_of(request).fares_submission_window_days)


def resident_id(p: Principal) -> int:
    """The signed-in resident's id (``Resident`` routes only)."""
    assert p.resident_id is not None
    return p.resident_id


def operator_scope(principal: Principal, operator_id: str) -> str:
    """The canonical operator id (an alias such as the corporate number resolves to it),
    after checking that an operator key acts for its own operator only."""
    refuse_twelve_digit_ids(operator_id=operator_id)
    canonical = canonical_operator_id(operator_id)
    ensure_own_operator(principal, canonical)
    return canonical


def identity_unavailable(reason: str, detail: str) -> ProblemError:
    """503 while card sign-in cannot work (no anchors, unreadable files, no current CRL)."""
    return ProblemError(
        503, "identity-unavailable", "Card sign-in is unavailable", detail, reason=reason
    )


async def trust_store(request: Request, conn: AsyncConnection) -> TrustStore:
    """Trust anchors and CRL from settings, reloaded when a file changes.

    A reload also ends at once every session whose certificate the new CRL revokes. Without
    anchors, or when the files cannot be read, card sign-in answers 503.
    """
    s = settings_of(request)
    if s.jpki_trust_anchors is None:
        raise identity_unavailable(
            "not-configured", "Set MEBUKU_JPKI_TRUST_ANCHORS and MEBUKU_JPKI_CRL."
        )
    paths = [s.jpki_trust_anchors, *([s.jpki_crl] if s.jpki_crl else [])]
    try:
        stamp = tuple((str(p), st.st_mtime_ns, st.st_size) for p in paths for st in (p.stat(),))
        cached = getattr(request.app.state, "fares_trust_store", None)
        if cached is not None and cached[0] == stamp:
            store: TrustStore = cached[1]
            return store
        store = await asyncio.to_thread(
            load_trust_store, s.jpki_trust_anchors, s.jpki_crl, s.jpki_allow_no_crl
        )
    except (OSError, ValueError):
        log.warning(L_("JPKI trust anchors or CRL cannot be read; card sign-in unavailable"))
        raise identity_unavailable(
            "unreadable", "The trust anchors or the CRL cannot be read; check the files."
        ) from None
    key = pseudonym_key(request)
    revoked = await asyncio.to_thread(_revoked_set, key, store)  # a national CRL is large
    ended = await revoke_cert_sessions(conn, revoked & await live_cert_hashes(conn))
    request.app.state.fares_trust_store = (stamp, store, revoked)
    log.info(L_("JPKI trust store loaded: %d revoked, %d sessions ended"), len(revoked), ended)
    return store


def _revoked_set(key: bytes, store: TrustStore) -> frozenset[bytes]:
    return frozenset(issuer_serial_hash(key, i, n) for i, n in revoked_serials(store))


def _revoked_hashes(request: Request) -> frozenset[bytes]:
    cached = getattr(request.app.state, "fares_trust_store", None)
    return cached[2] if cached is not None else frozenset()


async def session_check(request: Request, conn: AsyncConnection, session: LiveSession) -> bool:
    """Called by the API for every resident request: False ends a revoked card's session.

    Picks up a replaced CRL file first (which ends every matching session), so revocation
    takes effect on the next request even when nobody signs in.
    """
    if session.cert_hash is None:
        return True
    with contextlib.suppress(ProblemError):  # keep the last loaded revocation list;
        await trust_store(request, conn)  # sign-in itself reports the problem
    if session.cert_hash in _revoked_hashes(request):
        await revoke_cert_sessions(conn, [session.cert_hash])
        return False
    return True


async def ready_store(request: Request, conn: AsyncConnection) -> TrustStore:
    """The trust store when card sign-in can work at all (anchors and a current CRL)."""
    store = await trust_store(request, conn)
    try:
        check_store(store, datetime.now(UTC))
    except RevocationUnavailableError as e:
        log.warning(L_("card sign-in unavailable: %s"), e.slug)
        raise identity_unavailable(e.slug, str(e)) from None
    return store


async def road_distance(request: Request) -> ledger.DistanceLookup | None:
    """Shortest road distance on MEBUKU_ROAD_GRAPH_PATH (osmnx graph), loaded once."""
    path = settings_of(request).road_graph_path
    if path is None:
        return None
    from core.extras import MissingExtraError
    from mobility.network import NoRouteError, load_road_graph, road_distance_m

    graph = getattr(request.app.state, "fares_road_graph", None)
    if graph is None:
        try:
            graph = await asyncio.to_thread(load_road_graph, path)
        except MissingExtraError as e:  # MEBUKU_ROAD_GRAPH_PATH set without mebuku[road]
            raise ProblemError(
                503, "road-graph-unavailable", "Road graph unavailable", str(e)
            ) from None
        request.app.state.fares_road_graph = graph

    def lookup(lon1: float, lat1: float, lon2: float, lat2: float) -> float | None:
        try:
            return road_distance_m(graph, (lat1, lon1), (lat2, lon2))
        except NoRouteError:
            return None

    return lookup

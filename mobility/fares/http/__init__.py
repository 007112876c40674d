"""HTTP endpoints of the fares domain, one router per audience, mounted as one.

- :mod:`.signin`: My Number Card sign-in, sessions, renewed certificates
- :mod:`.residents`: a resident's subsidy, ledger entries, IC cards and fare quotes
- :mod:`.operators`: ride and tap submissions, reversals, monthly statements
- :mod:`.admin`: city staff's eligibility facts, enrolment support and card disputes

Models are in :mod:`mobility.fares.schemas`; domain errors become problems through
:data:`problem_handlers` (:mod:`.errors`), which the API installs once next to
:data:`router` (core/web.py). Every request is screened for Individual Numbers by the
API's ASGI layer (``api/screen.py``) before routing; :func:`.common.screen_request`
repeats the check for these routes should the router ever be mounted without it.
"""

from __future__ import annotations

from fastapi import APIRouter

from mobility.fares.schemas import QuoteIn, QuoteOut, SubsidyOut

from . import admin, operators, residents, signin
from .common import screen_request, session_check
from .errors import problem_handlers

# One flat router: each part's routes (each behind the second-line screen,
# ``common.ScreenedRoute``) are taken over as they are, so FastAPI matches a request
# against one level of routes instead of a nested router per part.
router = APIRouter()
for _part in (signin, residents, operators, admin):
    router.routes.extend(_part.router.routes)

__all__ = [
    "QuoteIn",
    "QuoteOut",
    "SubsidyOut",
    "problem_handlers",
    "router",
    "screen_request",
    "session_check",
]

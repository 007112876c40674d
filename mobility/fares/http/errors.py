"""The fares domain's errors as the problems clients see, declared once.

:data:`problem_handlers` is exported next to the router (core/web.py's contract); the API
installs one exception handler per class, so routes let these errors propagate. Titles
are msgids of the gettext catalogue (Japanese first); the detail explains what to do.
"""

from __future__ import annotations

from core.i18n import F_
from core.web import ProblemError, ProblemMapper
from mobility.fares import cards, ledger, residents
from mobility.fares.identity import CertificateError, RevocationUnavailableError
from mobility.fares.policy import NoPolicyError

from .common import identity_unavailable

DISPUTE_PATH = (
    "If this card is yours, bring it and your My Number Card to the city office;"
    " staff check that you hold it and end the other link (see the fares README, 'Card"
    " disputes')."
)
FARE_NOT_FOUND_DETAIL = "The bus timetable has no fare for this route and these stops."


def no_policy(e: NoPolicyError) -> ProblemError:
    """422: no version of the scheme was in force on that day."""
    # the message as raised (F_): the problem says it in the client's language
    return ProblemError(422, "no-policy", "No policy in force", e.args[0] if e.args else None)


def outside_window(e: ledger.OutsideWindowError) -> ProblemError:
    """422 with the rule broken (``submission-window`` or ``no-future-records``)."""
    return ProblemError(
        422,
        "outside-submission-window",
        "Record outside the submission window",
        F_(
            "{detail} (rule: {rule}; MEBUKU_FARES_SUBMISSION_WINDOW_DAYS).",
            detail=e.violation.detail,
            rule=e.violation.rule,
        ),
        rule=e.violation.rule,
    )


def record_conflict(e: ledger.RecordConflictError) -> ProblemError:
    """409: a record id reused for a different record."""
    return ProblemError(
        409,
        "record-conflict",
        "Record id already used for another record",
        F_(
            "{error} A replay must repeat the record exactly; a correction needs a new record id.",
            error=e.args[0] if e.args else "",
        ),
    )


def fare_unknown(_: ledger.FareUnknownError) -> ProblemError:
    """422: a submitted tap whose stops have no fare in the current feed."""
    return ProblemError(422, "fare-not-found", "No fare for this ride", FARE_NOT_FOUND_DETAIL)


def card_taken(e: cards.CardTakenError) -> ProblemError:
    """409: linked already by this resident, or held by another account (dispute path)."""
    if e.mine:
        return ProblemError(
            409,
            "card-already-linked",
            "Card already linked",
            "This card is linked to you (or you reported it lost).",
        )
    return ProblemError(
        409,
        "card-held-elsewhere",
        "Card held by another account",
        "This card is linked to another resident account or was reported lost. " + DISPUTE_PATH,
        dispute="in-person at the city office",
    )


def card_limit(e: cards.CardLimitError) -> ProblemError:
    """409 with the limit: too many active cards (the resident's own or at the counter)."""
    detail = (
        f"The resident already has {e.limit} active cards; unlink one first."
        if e.by_staff
        else f"A resident can have at most {e.limit} active cards; unlink one first."
    )
    return ProblemError(409, "card-limit", "Too many cards", detail, limit=e.limit)


def card_not_held(_: cards.CardNotHeldError) -> ProblemError:
    """404: staff asked to resolve a card that nobody holds."""
    return ProblemError(404, "not-found", "Not found", "This card is not linked.")


def certificate_taken(e: residents.CertificateTakenError) -> ProblemError:
    """409: the certificate to link is enrolled for another resident."""
    title = "The new certificate is enrolled" if e.renewal else "The certificate is enrolled"
    return ProblemError(409, "certificate-taken", title)


def certificate_refused(e: CertificateError, status: int = 401) -> ProblemError:
    """401 at sign-in (422 when staff read a card, see ``admin``); 503 when revocation
    cannot be checked (the server's problem, not the card's)."""
    if isinstance(e, RevocationUnavailableError):
        return identity_unavailable(e.slug, str(e))
    return ProblemError(status, f"certificate-{e.slug}", "Card sign-in refused", str(e))


problem_handlers: dict[type[Exception], ProblemMapper] = {
    NoPolicyError: no_policy,
    ledger.OutsideWindowError: outside_window,
    ledger.RecordConflictError: record_conflict,
    ledger.FareUnknownError: fare_unknown,
    cards.CardTakenError: card_taken,
    cards.CardLimitError: card_limit,
    cards.CardNotHeldError: card_not_held,
    residents.CertificateTakenError: certificate_taken,
    CertificateError: certificate_refused,
}

"""The message catalogue: Japanese first, English second, one gettext domain (``mebuku``).

Catalogues are the ``.po`` files under ``core/locale/{ja,en}/LC_MESSAGES/``; message ids
are English, so the English catalogue only needs entries where the wording differs. The
``.po`` files are compiled in memory with Babel on first use (no binary ``.mo`` in the
repository). The caller always names the language: a request's ``Accept-Language``
(:func:`negotiate`) or the process locale (:func:`process_lang`), never a global switch.
Domain terms follow ``docs/glossary.md``.

Markers: ``_``/``gettext`` translate now; ``N_`` marks an id translated where it is shown;
``L_`` is a log message in the process language that keeps its id as the line's ``event``;
``F_`` is a message with values that its reader's language translates later (problem
details); :func:`invalid` is a validator's refusal, said by :func:`validation_words` in
the reader's language like pydantic's own errors.
"""

from __future__ import annotations

import gettext as _gettext
import io
import os
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from pydantic_core import PydanticCustomError

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")
DEFAULT_LANG: Lang = "ja"
DOMAIN = "mebuku"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def po_path(lang: Lang) -> Path:
    """The catalogue file of one language, which the translation tests and tools edit."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translator(lang: Lang) -> _gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (fuzzy and empty entries fall back to the id)."""
    path = po_path(lang)
    if not path.is_file():
        return _gettext.NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def gettext(message: str, lang: Lang = DEFAULT_LANG) -> str:
    """``message`` in ``lang``."""
    return translator(lang).gettext(message)


_ = gettext


def gettext_for(lang: Lang) -> Callable[[str], str]:
    """A one-argument ``_`` bound to ``lang``, for modules that render a whole document."""
    return translator(lang).gettext


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, do not translate"
    """Mark a string for extraction where it is defined; translate it where it is shown."""
    return message


def as_lang(tag: str | None) -> Lang | None:
    """``ja``/``en`` for a language tag or locale name (``ja-JP``, ``en_US.UTF-8``), else None."""
    if not tag:
        return None
    primary = re.split(r"[-_.@]", tag.strip().lower(), maxsplit=1)[0]
    return primary if primary in LANGS else None


def negotiate(accept_language: str | None, default: Lang = DEFAULT_LANG) -> Lang:
    """The best of our languages for an ``Accept-Language`` header (RFC 9110 q-values)."""
    best: tuple[float, int, Lang] | None = None
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.partition(";")
        lang = as_lang(tag)
        if lang is None:
            continue
        q = 1.0
        m = re.search(r"q\s*=\s*([^;\s]*)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0  # a q we cannot read is no preference
            if not 0.0 <= q <= 1.0 or q != q:
                q = 0.0
        if q <= 0:
            continue
        if best is None or (q, -i) > (best[0], best[1]):
            best = (q, -i, lang)
    return best[2] if best else default


def process_lang(environ: dict[str, str] | None = None) -> Lang:
    """The CLI's language: ``MEBUKU_LANG``, then the locale (LC_ALL, LC_MESSAGES, LANG),
    then Japanese. ``C``/``POSIX`` locales say nothing about the reader, so they do not
    switch to English."""
    env = os.environ if environ is None else environ
    for name in ("MEBUKU_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        lang = as_lang(env.get(name))
        if lang is not None:
            return lang
    return DEFAULT_LANG


def cli_gettext(message: str) -> str:
    """``message`` in the language of the process (:func:`process_lang`), for the CLI's help
    and messages; looked up at each call, so the environment of the run decides."""
    return translator(process_lang()).gettext(message)


class LogText(str):
    """A log message in the language of the process that keeps its English message id as
    :attr:`event`: the stable, greppable key of the line (``core.logging`` writes it as the
    JSON field ``event``), whatever language the operator reads."""

    event: str


def L_(message: str) -> LogText:  # noqa: N802 - a gettext-style marker, extracted like _()
    """``message`` (a %-style log format) in the process language, for a log line an
    operator reads: ``log.info(L_("applied migration %s"), version)``. The arguments stay
    separate, so the structured values are the same in every language."""
    text = LogText(translator(process_lang()).gettext(message))
    text.event = message
    return text


class Said(str):
    """A message with values, formatted in English, that keeps its message id and values
    so whoever shows it can say it again in the reader's language (:meth:`in_lang`)."""

    msgid: str
    values: dict[str, Any]

    def in_lang(self, lang: Lang) -> str:
        """The message in ``lang`` (the English text when the catalogue has no entry)."""
        values = {k: v.in_lang(lang) if isinstance(v, Said) else v for k, v in self.values.items()}
        try:
            return gettext(self.msgid, lang).format(**values)
        except (KeyError, IndexError, ValueError):
            return str(self)


def F_(message: str, **values: Any) -> Said:  # noqa: N802 - a gettext-style marker, extracted like _()
    """``message.format(**values)`` for a problem detail or error text whose reader's
    language is known only where it is shown: ``ProblemError(404, ..., F_("No trial
    {trial}.", trial=repr(t)))``; :func:`api.problems.problem_response` translates it."""
    said = Said(message.format(**values))
    said.msgid = message
    said.values = values
    return said


def localized(text: str, lang: Lang) -> str:
    """``text`` in ``lang``: a :class:`Said` by its id and values, other text by the
    catalogue when it is a message id there (else as it is)."""
    return text.in_lang(lang) if isinstance(text, Said) else gettext(text, lang)


# Pydantic's validation messages (settings, command-line values), by error type. The ids
# are pydantic's own English templates, so English stays word for word what pydantic says;
# the placeholders are the error's ``ctx`` fields.
VALIDATION_WORDS: dict[str, str] = {
    "missing": N_("Field required"),
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_type": N_("Input should be a valid integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "float_type": N_("Input should be a valid number"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "bool_type": N_("Input should be a valid boolean"),
    "string_type": N_("Input should be a valid string"),
    "list_type": N_("Input should be a valid list"),
    "greater_than": N_("Input should be greater than {gt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than": N_("Input should be less than {lt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "literal_error": N_("Input should be {expected}"),
    "enum": N_("Input should be {expected}"),
    "string_too_short": N_("String should have at least {min_length} characters"),
    "string_too_long": N_("String should have at most {max_length} characters"),
    "date_parsing": N_("Input should be a valid date"),
    "date_from_datetime_parsing": N_("Input should be a valid date"),
    "datetime_parsing": N_("Input should be a valid datetime"),
    "datetime_from_date_parsing": N_("Input should be a valid datetime"),
    "time_parsing": N_("Input should be a valid time"),
    "uuid_parsing": N_("Input should be a valid UUID"),
    "json_invalid": N_("Invalid JSON"),
    "path_type": N_("Input is not a valid path"),
    "extra_forbidden": N_("Extra inputs are not permitted"),
    "dict_type": N_("Input should be a valid dictionary"),
    "model_type": N_("Input should be a valid dictionary"),
    "model_attributes_type": N_("Input should be a valid dictionary"),
    "too_short": N_("Should have at least {min_length} items, not {actual_length}"),
    "too_long": N_("Should have at most {max_length} items, not {actual_length}"),
    "multiple_of": N_("Input should be a multiple of {multiple_of}"),
    "finite_number": N_("Input should be a finite number"),
    "string_pattern_mismatch": N_("String should match pattern '{pattern}'"),
    "date_type": N_("Input should be a valid date"),
    "datetime_type": N_("Input should be a valid datetime"),
    "date_from_datetime_inexact": N_("A date should have no time of day"),
    "timezone_aware": N_("Input should have timezone info"),
    "url_parsing": N_("Input should be a valid URL"),
    "url_type": N_("Input should be a valid URL"),
    "url_scheme": N_("URL scheme should be {expected_schemes}"),
    "union_tag_invalid": N_(
        "Input tag {tag} found using {discriminator} does not match any of the expected tags: "
        "{expected_tags}"
    ),
    "union_tag_not_found": N_("Unable to extract tag using discriminator {discriminator}"),
    "frozen_field": N_("Field is frozen"),
    "set_type": N_("Input should be a valid set"),
    "tuple_type": N_("Input should be a valid tuple"),
    "bytes_type": N_("Input should be a valid bytes"),
    "none_required": N_("Input should be None"),
    "ip_v4_address": N_("Input is not a valid IPv4 address"),
    "ip_any_address": N_("Input is not a valid IPv4 or IPv6 address"),
}
# An error type no template above knows: in Japanese still says which field and that its
# value is refused, with pydantic's type code (English keeps pydantic's own message).
VALIDATION_FALLBACK = N_("Invalid value ({type})")


def invalid(message: str, **values: Any) -> PydanticCustomError:
    """A validator's refusal (raise it in a ``field_validator``/``model_validator``) that
    each reader gets in their language: ``message`` is the English message id with
    ``{placeholders}`` for ``values``. Its pydantic ``type`` is ``value_error``, as a
    ``ValueError`` would give; :func:`validation_words` translates it."""
    return PydanticCustomError(
        "value_error", message, {**{k: str(v) for k, v in values.items()}, "msgid": message}
    )


def validation_words(error: Mapping[str, Any], lang: Lang) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in ``lang``. A refusal
    raised with :func:`invalid` is its message id in the language; any other
    ``value_error`` is our own validator's text as it is. In English every other error is
    pydantic's message as it is; in Japanese, by error type (:data:`VALIDATION_WORDS`),
    else :data:`VALIDATION_FALLBACK`."""
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    ctx = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    if "msgid" in ctx:
        try:
            return gettext(ctx.pop("msgid"), lang).format(**ctx)
        except (KeyError, IndexError):
            return msg
    kind = str(error.get("type"))
    template = VALIDATION_WORDS.get(kind)
    if lang == "en" or kind in ("value_error", "assertion_error"):
        return msg
    if template is None:
        return gettext(VALIDATION_FALLBACK, lang).format(type=kind)
    if "expected" in ctx:  # "'ja' or 'en'": the list without the English "or"
        ctx["expected"] = "、".join(re.split(r",\s*|\s+or\s+", ctx["expected"]))
    try:
        return gettext(template, lang).format(**ctx)
    except (KeyError, IndexError):
        return msg


def error_location(loc: tuple[Any, ...] | list[Any], drop: int = 0) -> str:
    """Pydantic's ``("devices", 0, "site_id")`` as ``devices[0].site_id`` (without the
    first ``drop`` parts, e.g. a union's tag); ``-`` for the document as a whole."""
    out = ""
    for part in list(loc)[drop:]:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "-"


def validation_lines(
    errors: list[Any], lang: Lang, where: Callable[[Any], str] = error_location
) -> list[str]:
    """``field: message`` for each pydantic error, in ``lang`` (CLI lines, log lines)."""
    line = gettext("{field}: {problem}", lang)
    return [
        line.format(field=where(e.get("loc", ())), problem=validation_words(e, lang))
        for e in errors
    ]

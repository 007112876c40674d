"""Logging setup: JSON lines for services, readable text for people at a terminal.

No secret may reach a log line. Code that logs an address passes it through
:func:`redact_url`; as a safety net every handler :func:`setup_logging` installs carries a
:class:`RedactSecrets` filter that masks ``scheme://user:password@`` user-info,
``password=...`` pairs and the known secret values (the pseudonym key, passwords from the
settings) in every record, exception tracebacks included.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from core.settings import Settings

MASK = "***"

# scheme://user:password@ (the password may be empty); user-info never holds "/" or "@".
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s/@]*@")
# password=... in query strings and libpq keyword/value connection strings.
_PASSWORD_KV = re.compile(r"(?i)(?P<head>\bpass(?:word)?=)(?:'(?:[^'\\]|\\.)*'|[^\s&;']+)")
# Shorter values would mask ordinary words; secrets this short are refused elsewhere anyway.
_MIN_SECRET_LEN = 6


def redact_url(url: str | None) -> str:
    """``url`` with its password (user-info and ``password=`` query) replaced by ``***``.

    Use it wherever an address is logged or printed: ``log.info("to %s", redact_url(u))``.
    """
    if url is None:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        netloc = f"{userinfo}@{hostport}"
    query = _PASSWORD_KV.sub(rf"\g<head>{MASK}", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords, ``password=`` pairs and each of ``secrets`` in free text."""
    # Each pattern needs its literal ("...@", "...="): most lines have neither, and the
    # membership test costs far less than a regular-expression pass.
    if "@" in text:
        text = _USERINFO.sub(rf"\g<head>{MASK}@", text)
    if "=" in text:
        text = _PASSWORD_KV.sub(rf"\g<head>{MASK}", text)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


class RedactSecrets(logging.Filter):
    """A handler filter that rewrites a record whose text would reveal a secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these values from now on; too-short values are skipped as they would mask ordinary
        text."""
        # Longest first, so a secret that contains another is masked whole.
        self.secrets |= {s for s in secrets if len(s) >= _MIN_SECRET_LEN}
        self._ordered = sorted(self.secrets, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask every known secret in the message and its arguments before any handler sees it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the formatter's own error
            return True
        clean = redact_text(message, self._ordered)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            # Formatted here and redacted; formatters (the JSON one too) then print exc_text.
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self._ordered)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self._ordered)
        return True


class EventKey(logging.Filter):
    """Give a record logged with :func:`core.i18n.L_` its English message id as ``event``
    (a JSON field): the message is in the operator's language, the key stays greppable.
    Runs before :class:`RedactSecrets`, which may replace the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Copy the message's ``event`` onto the record; other records pass unchanged."""
        event = getattr(record.msg, "event", None)
        if isinstance(event, str):
            record.event = event
        return True


def settings_secrets(s: Settings) -> list[str]:
    """Every secret value the settings hold: ``SecretStr`` fields and URL passwords."""
    found: list[str] = []
    for name in type(s).model_fields:
        value = getattr(s, name, None)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            password = _url_password(value)
            if password:
                found += [password, unquote(password)]
    return found


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """One logging set-up for every command: text or JSON lines on stderr, secrets masked."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
                json_ensure_ascii=False,  # Japanese messages readable (and greppable) as such
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(EventKey())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""Readiness probes: can we reach the database and the MQTT broker right now?

The broker probe speaks MQTT 3.1.1 itself (CONNECT, wait for CONNACK, DISCONNECT), so a
port that accepts TCP but is not a working broker, or refuses our credentials, counts as
not ready.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl

from psycopg_pool import AsyncConnectionPool

from core.i18n import DEFAULT_LANG, N_, Lang, gettext
from core.settings import MqttAddress

CONNACK_CODES = {
    0: N_("accepted"),
    1: N_("unacceptable protocol version"),
    2: N_("client id rejected"),
    3: N_("server unavailable"),
    4: N_("bad user name or password"),
    5: N_("not authorized"),
}


def _utf8(s: str) -> bytes:
    raw = s.encode()
    return len(raw).to_bytes(2, "big") + raw


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(
    client_id: str, username: str | None, password: str | None, keepalive: int = 10
) -> bytes:
    """An MQTT 3.1.1 CONNECT packet with a clean session (no state left on the broker)."""
    flags = 0x02
    payload = _utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    variable = _utf8("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big")
    body = variable + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


def parse_connack(data: bytes) -> int:
    """The CONNACK return code; ValueError if this is not a CONNACK."""
    if len(data) != 4 or data[0] != 0x20 or data[1] != 0x02:
        raise ValueError(f"not a CONNACK: {data.hex()}")
    return data[3]


async def check_broker(
    addr: MqttAddress, timeout: float = 2.0, lang: Lang = DEFAULT_LANG
) -> str | None:
    """None when the broker accepts a connection, else why not (in ``lang``; the
    exception's type name stays as Python spells it)."""
    ctx = ssl.create_default_context() if addr.tls else None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(addr.host, addr.port, ssl=ctx)
            try:
                client_id = f"mebuku-readyz-{secrets.token_hex(4)}"
                writer.write(connect_packet(client_id, addr.username, addr.password))
                await writer.drain()
                code = parse_connack(await reader.readexactly(4))
                if code != 0:
                    why = CONNACK_CODES.get(code)
                    return gettext("broker refused: {reason}", lang).format(
                        reason=gettext(why, lang) if why else code
                    )
                writer.write(b"\xe0\x00")  # DISCONNECT
                await writer.drain()
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
        return gettext("broker unreachable: {error}", lang).format(error=type(e).__name__)
    return None


async def check_database(
    pool: AsyncConnectionPool, timeout: float = 2.0, lang: Lang = DEFAULT_LANG
) -> str | None:
    """None when a pooled connection answers a query, else why not (in ``lang``)."""
    try:
        async with asyncio.timeout(timeout), pool.connection(timeout=timeout) as conn:
            await conn.execute("SELECT 1")
    except Exception as e:  # any failure means "not ready", reported by type only
        return gettext("database unreachable: {error}", lang).format(error=type(e).__name__)
    return None


# A heartbeat older than its worker's stall window plus this is stale (slack for one slow
# heartbeat write: 3 s connect timeout + 5 s statement timeout).
HEARTBEAT_SLACK_S = 10.0


async def check_ingest(
    pool: AsyncConnectionPool, timeout: float = 2.0, lang: Lang = DEFAULT_LANG
) -> str | None:
    """The text "ok", or which ingest workers are stalled or silent (in ``lang``; a stalled
    worker's reason is the text it stored); None when none reports.

    Each worker writes a row to ``ingest_heartbeat`` every few seconds (``ingest/worker.py``)
    and deletes it when it stops cleanly, so a row that says stalled, or that is older
    than the worker's stall window, means ingestion is stuck or the worker died.
    """
    try:
        async with asyncio.timeout(timeout), pool.connection(timeout=timeout) as conn:
            cur = await conn.execute(
                "SELECT worker_id, stalled, reason, stall_seconds,"
                " extract(epoch FROM now() - updated_at)::float8"
                " FROM ingest_heartbeat ORDER BY worker_id"
            )
            rows = await cur.fetchall()
    except Exception as e:  # reported by type only, like the database check
        return gettext("ingest heartbeat unreadable: {error}", lang).format(error=type(e).__name__)
    if not rows:
        return None
    problems = []
    for worker, stalled, reason, stall_s, age in rows:
        if stalled:
            problems.append(
                gettext("{worker} stalled: {reason}", lang).format(worker=worker, reason=reason)
            )
        elif age > stall_s + HEARTBEAT_SLACK_S:
            problems.append(
                gettext("{worker} silent: no heartbeat for {age:.0f} s", lang).format(
                    worker=worker, age=age
                )
            )
    return "; ".join(problems) or "ok"

"""Web Push delivery with pywebpush: RFC 8291 (aes128gcm) message encryption with the
subscription's keys, RFC 8292 VAPID (an ES256 JWT for the push service's origin) and an
RFC 8030 POST with a TTL. The VAPID key comes from ``MEBUKU_PORTAL_VAPID_PRIVATE_KEY``."""

from __future__ import annotations

import base64
import json
import logging

import anyio
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

from core.i18n import L_
from portal.notices import Sender, Subscription

log = logging.getLogger(__name__)

TTL_S = 24 * 3600  # a notice older than a day is not worth showing
TIMEOUT_S = 10.0


def load_vapid(text: str) -> Vapid02:
    """A VAPID key from PEM text or base64url of the raw 32-byte private value."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return Vapid02.from_pem(text.encode())
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return Vapid02.from_raw(base64.urlsafe_b64encode(raw).rstrip(b"="))


def new_vapid_key() -> str:
    """A new VAPID private key as PEM (for ``mebuku portal vapid-key``)."""
    v = Vapid02()
    v.generate_keys()
    return str(v.private_pem().decode())


def public_key_b64(vapid: Vapid02) -> str:
    """The applicationServerKey a browser subscribes with (uncompressed point, base64url)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def webpush_sender(vapid: Vapid02, subject: str) -> Sender:
    """A sender for :func:`portal.notices.deliver_due`: the push service's HTTP status, or
    0 when it could not be reached (retried later)."""

    def send_sync(sub: Subscription, payload: dict[str, str]) -> int:
        info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        try:
            r = webpush(
                info,
                data=json.dumps(payload, ensure_ascii=False),
                vapid_private_key=vapid,
                vapid_claims={"sub": subject},
                content_encoding="aes128gcm",
                ttl=TTL_S,
                timeout=TIMEOUT_S,
            )
        except WebPushException as e:
            return int(e.response.status_code) if e.response is not None else 0
        except Exception as e:
            log.info(L_("push service unreachable: %s"), type(e).__name__)
            return 0
        return int(getattr(r, "status_code", 0))

    async def send(sub: Subscription, payload: dict[str, str]) -> int:
        return await anyio.to_thread.run_sync(send_sync, sub, payload)

    return send

"""A local Web Push service stand-in (RFC 8030) for tests: it checks the VAPID JWT
(RFC 8292: ES256 signature by the key in ``k``, ``aud`` = this service's origin, ``exp``
within 24 hours, a ``sub`` contact), requires ``Content-Encoding: aes128gcm`` and a TTL,
and decrypts the body with the subscription's private key and auth secret (RFC 8291, with
http_ece). So a test proves the real wire format, not a mock of it.

Each subscription can be told what to answer next (``script``: e.g. [503, 201] or [410]).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's subscription: its ECDH key pair and auth secret, and what arrived."""

    name: str
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    script: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    @property
    def p256dh(self) -> str:
        return b64u(
            self.key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )


class PushService:
    """The stand-in server: ``with PushService() as ps: ps.device('phone')``."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.refusals: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PushService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def device(self, name: str) -> Device:
        d = Device(name, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))
        self.devices[name] = d
        return d

    def endpoint(self, d: Device) -> str:
        return f"{self.origin}/push/{d.name}"

    # --------------------------------------------------------------- checks

    def check_vapid(self, header: str) -> str | None:
        """None when the Authorization header is a valid VAPID token for this origin."""
        if not header.startswith("vapid "):
            return "no vapid authorization"
        parts = dict(p.strip().split("=", 1) for p in header[6:].split(","))
        token, k = parts.get("t", ""), parts.get("k", "")
        try:
            head_b, claims_b, sig_b = token.split(".")
            head, claims = json.loads(unb64u(head_b)), json.loads(unb64u(claims_b))
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(k))
            sig = unb64u(sig_b)
            der = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
            pub.verify(der, f"{head_b}.{claims_b}".encode(), ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature, KeyError) as e:
            return f"bad vapid token: {type(e).__name__}"
        now = time.time()
        if head.get("alg") != "ES256":
            return "vapid alg is not ES256"
        if claims.get("aud") != self.origin:
            return f"vapid aud {claims.get('aud')!r} is not {self.origin}"
        if not now < int(claims.get("exp", 0)) <= now + 24 * 3600:
            return "vapid exp not within 24 hours"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "vapid sub is not a contact"
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                device = service.devices.get(name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if device is None:
                    return self._answer(404)
                problem = service.check_vapid(self.headers.get("Authorization", ""))
                if problem is None and self.headers.get("Content-Encoding") != "aes128gcm":
                    problem = "content encoding is not aes128gcm"
                if problem is None and not (self.headers.get("TTL") or "").isdigit():
                    problem = "no TTL"
                if problem is not None:
                    service.refusals.append(problem)
                    return self._answer(403)
                status = device.script.pop(0) if device.script else 201
                device.answered.append(status)
                if status == 201:
                    plain = http_ece.decrypt(
                        body, private_key=device.key, auth_secret=device.auth, version="aes128gcm"
                    )
                    device.received.append(json.loads(plain))
                return self._answer(status)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

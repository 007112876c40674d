"""A test JPKI: a CA, card certificates and a CRL built with ``cryptography``.

Keys are 1024-bit here only to keep key generation fast in tests (real cards use 2048).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

KEY_BITS = 1024


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


@dataclass
class Card:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def der_b64(self) -> str:
        return base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    def sign(self, nonce_b64: str) -> str:
        nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
        sig = self.key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())
        return base64.urlsafe_b64encode(sig).decode().rstrip("=")


class TestCA:
    __test__ = False

    def __init__(self, name: str = "Test JPKI User Authentication CA") -> None:
        self.key = _key()
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.revoked: list[int] = []

    def issue(self, *, valid_from: datetime | None = None, days: int = 365) -> Card:
        key = _key()
        start = valid_from or datetime.now(UTC) - timedelta(hours=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))  # JPKI user-auth certs carry no name
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Card(key, cert)

    def revoke(self, card: Card) -> None:
        self.revoked.append(card.cert.serial_number)

    def crl(self) -> x509.CertificateRevocationList:
        now = datetime.now(UTC)
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.name)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(days=1))
        )
        for serial in self.revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - timedelta(minutes=1))
                .build()
            )
        return b.sign(self.key, hashes.SHA256())

    def write(self, folder: Path) -> tuple[Path, Path]:
        anchors, crl = folder / "jpki-anchors.pem", folder / "jpki.crl"
        anchors.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        crl.write_bytes(self.crl().public_bytes(serialization.Encoding.DER))
        return anchors, crl

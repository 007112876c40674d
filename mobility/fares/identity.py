"""Verifying a My Number Card sign-in: the JPKI user-authentication certificate.

The card signs the server's nonce (RSA PKCS#1 v1.5, SHA-256). The certificate must be
issued directly by a configured trust anchor (the JPKI user-authentication CA issues card
certificates itself), be within its validity period, allow digital signatures and not be
on the configured CRL. The certificate carries no name or number; the platform keeps only a
keyed hash of its issuer and serial.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.pseudonym import keyed_hash

CERT_PURPOSE = "jpki-cert"


class CertificateError(Exception):
    """The sign-in is refused; ``slug`` names why (no personal data in the message)."""

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(message)
        self.slug = slug


@dataclass(frozen=True)
class TrustStore:
    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()


def load_trust_store(anchors: Path, crl: Path | None) -> TrustStore:
    roots = tuple(x509.load_pem_x509_certificates(anchors.read_bytes()))
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    if crl is not None:
        raw = crl.read_bytes()
        crls = (
            (x509.load_pem_x509_crl(raw),)
            if raw.lstrip().startswith(b"-----BEGIN")
            else (x509.load_der_x509_crl(raw),)
        )
    return TrustStore(roots, crls)


def parse_certificate(text: str) -> x509.Certificate:
    """A certificate sent as PEM or as base64 DER."""
    try:
        if "-----BEGIN" in text:
            return x509.load_pem_x509_certificate(text.encode())
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as e:
        raise CertificateError("bad-certificate", "certificate is not valid PEM or DER") from e


def decode_b64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error) as e:
        raise CertificateError("bad-encoding", f"{what} is not base64") from e


def verify_signature(cert: x509.Certificate, message: bytes, signature: bytes) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateError("bad-certificate", "certificate key is not RSA")
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as e:
        raise CertificateError("bad-signature", "signature does not match the nonce") from e


def verify_certificate(store: TrustStore, cert: x509.Certificate, now: datetime) -> None:
    issuer = next((a for a in store.anchors if a.subject == cert.issuer), None)
    if issuer is None:
        raise CertificateError("untrusted", "certificate is not issued by a trusted CA")
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise CertificateError("untrusted", "certificate signature does not chain") from e
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise CertificateError("expired", "certificate is outside its validity period")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            raise CertificateError("bad-certificate", "certificate may not sign")
    except x509.ExtensionNotFound:
        pass
    for crl in store.crls:
        if crl.issuer != issuer.subject:
            continue
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise CertificateError("crl-invalid", "configured CRL has a bad signature")
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise CertificateError("revoked", "certificate has been revoked")


def verify_signin(
    store: TrustStore, cert: x509.Certificate, nonce: bytes, signature: bytes, now: datetime
) -> None:
    """Everything a sign-in needs, or CertificateError."""
    verify_certificate(store, cert, now)
    verify_signature(cert, nonce, signature)


def certificate_hash(key: bytes, cert: x509.Certificate) -> bytes:
    """The resident link: a keyed hash of issuer and serial (never stored in the clear)."""
    return keyed_hash(key, CERT_PURPOSE, f"{cert.issuer.rfc4514_string()}|{cert.serial_number:x}")

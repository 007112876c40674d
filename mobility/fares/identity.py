"""Verifying a My Number Card sign-in: the JPKI user-authentication certificate.

The card signs the server's nonce (RSA PKCS#1 v1.5, SHA-256). The certificate must be
issued directly by a configured trust anchor (the JPKI user-authentication CA issues card
certificates itself), be within its validity period, carry a KeyUsage extension with
digitalSignature and not be on the issuer's CRL. Revocation fails closed: without a CRL
for the issuer (unless the development switch allows it), with a CRL past its nextUpdate or
with a badly signed one, sign-in is unavailable (:class:`RevocationUnavailableError`, 503), not
granted. The certificate carries no name or number; the platform keeps only a keyed hash
of its issuer and serial.
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


class RevocationUnavailableError(CertificateError):
    """Revocation cannot be checked (no, stale or bad CRL): the server's problem, 503."""


@dataclass(frozen=True)
class TrustStore:
    """The trusted card authorities and their revocation lists."""

    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    allow_no_crl: bool = False  # development only (MEBUKU_JPKI_ALLOW_NO_CRL)


def check_revocation_source(
    store: TrustStore, issuer: x509.Certificate, now: datetime
) -> list[x509.CertificateRevocationList]:
    """The issuer's CRLs, each signed by it and current; else RevocationUnavailableError."""
    crls = [c for c in store.crls if c.issuer == issuer.subject]
    if not crls:
        if store.allow_no_crl:
            return []
        raise RevocationUnavailableError("crl-missing", "no CRL is loaded for the card's CA")
    for crl in crls:
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise RevocationUnavailableError("crl-invalid", "the loaded CRL has a bad signature")
        next_update = crl.next_update_utc
        if next_update is None or next_update < now:
            raise RevocationUnavailableError(
                "crl-stale", "the loaded CRL is past its nextUpdate; load a fresh one"
            )
        if crl.last_update_utc > now:
            raise RevocationUnavailableError("crl-invalid", "the loaded CRL is dated in the future")
    return crls


def check_store(store: TrustStore, now: datetime) -> None:
    """Sign-in can work at all: anchors present, each with a current CRL (or the switch)."""
    if not store.anchors:
        raise RevocationUnavailableError("no-anchors", "no trust anchors are configured")
    for anchor in store.anchors:
        check_revocation_source(store, anchor, now)


def revoked_serials(store: TrustStore) -> list[tuple[x509.Name, int]]:
    """(issuer, serial) of every revoked certificate on the loaded CRLs."""
    return [(crl.issuer, r.serial_number) for crl in store.crls for r in crl]


def load_trust_store(anchors: Path, crl: Path | None, allow_no_crl: bool = False) -> TrustStore:
    """Read the trust anchors and CRL from files; without a CRL only when explicitly allowed
    (development), as a revoked card must not sign in."""
    roots = tuple(x509.load_pem_x509_certificates(anchors.read_bytes()))
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    if crl is not None:
        raw = crl.read_bytes()
        crls = (
            (x509.load_pem_x509_crl(raw),)
            if raw.lstrip().startswith(b"-----BEGIN")
            else (x509.load_der_x509_crl(raw),)
        )
    return TrustStore(roots, crls, allow_no_crl)


def parse_certificate(text: str) -> x509.Certificate:
    """A certificate sent as PEM or as base64 DER."""
    try:
        if "-----BEGIN" in text:
            return x509.load_pem_x509_certificate(text.encode())
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as e:
        raise CertificateError("bad-certificate", "certificate is not valid PEM or DER") from e


def decode_b64(text: str, what: str) -> bytes:
    """Decode base64url as clients send it, with or without padding; bad input is a 4xx, not a
    crash."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error) as e:
        raise CertificateError("bad-encoding", f"{what} is not base64") from e


def verify_signature(cert: x509.Certificate, message: bytes, signature: bytes) -> None:
    """Check the card's RSA signature over the challenge: proof the card is present."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateError("bad-certificate", "certificate key is not RSA")
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as e:
        raise CertificateError("bad-signature", "signature does not match the nonce") from e


def verify_certificate(store: TrustStore, cert: x509.Certificate, now: datetime) -> None:
    """Check the card certificate chains to a trusted authority, is valid now and not revoked."""
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
    except x509.ExtensionNotFound:
        raise CertificateError("bad-certificate", "certificate has no KeyUsage") from None
    if not ku.digital_signature:
        raise CertificateError("bad-certificate", "certificate may not sign")
    for crl in check_revocation_source(store, issuer, now):
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
    return issuer_serial_hash(key, cert.issuer, cert.serial_number)


def issuer_serial_hash(key: bytes, issuer: x509.Name, serial: int) -> bytes:
    """The same keyed hash from a CRL entry, so revoked certificates can be matched."""
    return keyed_hash(key, CERT_PURPOSE, f"{issuer.rfc4514_string()}|{serial:x}")

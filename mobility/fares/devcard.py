"""A development-only card authority: a test CA, its CRL and card certificates that sign
challenges the way a My Number Card's user-authentication key does (RSA PKCS#1 v1.5 over
SHA-256 of the nonce bytes).

Nothing here is used in production: ``mebuku dev card`` refuses to run unless
``MEBUKU_ENVIRONMENT=development``. The files live in one folder (default
``.mebuku/dev-ca``): ``ca.crt`` (give it to ``MEBUKU_JPKI_TRUST_ANCHORS``), ``crl.pem``
(``MEBUKU_JPKI_CRL``), ``ca.key`` and ``cards/<name>.crt|.key``, all readable by their
owner only.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CRL_DAYS = 30
CARD_DAYS = 365
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class DevCardError(RuntimeError):
    """A dev card operation that cannot work (one line that says what to do)."""


@dataclass(frozen=True)
class DevCA:
    """A test card authority in a folder, standing in for J-LIS in development only."""

    folder: Path

    @property
    def cert_path(self) -> Path:
        """The CA certificate residents' test cards chain to."""
        return self.folder / "ca.crt"

    @property
    def key_path(self) -> Path:
        """The CA's private key, which signs test cards and the CRL."""
        return self.folder / "ca.key"

    @property
    def crl_path(self) -> Path:
        """The CRL the API checks card certificates against."""
        return self.folder / "crl.pem"

    def card_paths(self, name: str) -> tuple[Path, Path]:
        """Certificate and key file of the test card ``name``; the name is checked so it cannot
        escape the folder."""
        if not _NAME.match(name):
            raise DevCardError(f"card name {name!r}: use letters, digits, '_' and '-'")
        return self.folder / "cards" / f"{name}.crt", self.folder / "cards" / f"{name}.key"

    def exists(self) -> bool:
        """Whether the authority was created already (so it is not created twice)."""
        return self.cert_path.is_file() and self.key_path.is_file() and self.crl_path.is_file()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only (keys and certificates alike)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def init_ca(ca: DevCA, now: datetime | None = None) -> bool:
    """Create the CA and an empty CRL; False when they exist (the CRL is then re-signed if
    it expires within a week, keeping what it revokes, so sign-in never stops)."""
    now = now or datetime.now(UTC)
    if ca.exists():
        crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
        next_update = crl.next_update_utc
        if next_update is None or next_update < now + timedelta(days=7):
            write_crl(ca, now=now)
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mebuku development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Mebuku TEST card CA (not JPKI)"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=5 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(ca.key_path, _pem_key(key))
    _write_private(ca.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    write_crl(ca, now=now)
    return True


def write_crl(ca: DevCA, revoked: list[int] | None = None, now: datetime | None = None) -> Path:
    """(Re)issue the CRL, valid for :data:`CRL_DAYS`, revoking ``revoked`` serials (and
    every serial the current CRL already revokes)."""
    cert, key = _load_parts(ca)
    now = now or datetime.now(UTC)
    serials = set(revoked or ())
    if ca.crl_path.is_file():
        old = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
        serials |= {r.serial_number for r in old}
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=CRL_DAYS))
    )
    for s in sorted(serials):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(now).build()
        )
    crl = builder.sign(key, hashes.SHA256())
    _write_private(ca.crl_path, crl.public_bytes(serialization.Encoding.PEM))
    return ca.crl_path


def _load_parts(ca: DevCA) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    if not (ca.cert_path.is_file() and ca.key_path.is_file()):
        raise DevCardError(f"no test CA in {ca.folder}: run `mebuku dev card init` first")
    cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return cert, key


def issue_card(ca: DevCA, name: str, now: datetime | None = None) -> Path:
    """A card certificate and key named ``name`` (kept when it exists): RSA 2048 with
    KeyUsage digitalSignature, as a JPKI user-authentication certificate has."""
    crt, key_path = ca.card_paths(name)
    if crt.is_file() and key_path.is_file():
        return crt
    ca_cert, ca_key = _load_parts(ca)
    now = now or datetime.now(UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test card {name}")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CARD_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _pem_key(key))
    _write_private(crt, cert.public_bytes(serialization.Encoding.PEM))
    return crt


def revoke_card(ca: DevCA, name: str) -> int:
    """Put the card's serial on a freshly signed CRL; returns the serial."""
    crt, _ = ca.card_paths(name)
    if not crt.is_file():
        raise DevCardError(f"no test card {name!r} in {ca.folder}")
    serial = x509.load_pem_x509_certificate(crt.read_bytes()).serial_number
    write_crl(ca, [serial])
    return serial


def card_certificate_pem(ca: DevCA, name: str) -> str:
    """The PEM certificate of test card ``name``, as a card reader would hand it over."""
    crt, _ = ca.card_paths(name)
    if not crt.is_file():
        raise DevCardError(f"no test card {name!r}: run `mebuku dev card issue {name}`")
    return crt.read_text()


def sign_nonce(ca: DevCA, name: str, nonce_b64: str) -> str:
    """The card's signature over the nonce's bytes: RSA PKCS#1 v1.5 with SHA-256, base64url
    without padding (what ``POST /v1/auth/session`` takes as ``signature``)."""
    _, key_path = ca.card_paths(name)
    if not key_path.is_file():
        raise DevCardError(f"no test card {name!r}: run `mebuku dev card issue {name}`")
    try:
        nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    except ValueError as e:
        raise DevCardError("the nonce is not base64url") from e
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    sig = key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())
    return base64.urlsafe_b64encode(sig).decode().rstrip("=")

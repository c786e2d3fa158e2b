"""Certificates the operator makes itself, with the `cryptography` library: a store's certificate
authority and the leaf certificates it signs. ECDSA P-256 keys, SHA-256 signatures, PEM text.

Nothing here decides when to make a certificate (`controller/certificates.py` does); these functions
make, read and check them. Keys and certificates never reach a log: `KeyPair` hides its key from `repr`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Issued a little before `now`, so that a peer whose clock lags by a minute accepts a new certificate.
BACKDATE = dt.timedelta(minutes=5)
ORGANIZATION = "memory-operator"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM."""

    certificate: str
    key: str = field(repr=False)

    @property
    def parsed(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate.encode())

    @property
    def not_after(self) -> dt.datetime:
        return self.parsed.not_valid_after_utc

    def __repr__(self) -> str:
        return f"KeyPair(subject={self.parsed.subject.rfc4514_string()!r}, not_after={self.not_after})"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def make_ca(common_name: str, now: dt.datetime, validity: dt.timedelta) -> KeyPair:
    """A self-signed CA that signs leaf certificates only (path length 0)."""
    key = new_key()
    name = _name(common_name)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(certificate_pem(certificate), _key_pem(key))


def make_leaf(
    ca: KeyPair,
    common_name: str,
    dns_names: Sequence[str],
    now: dt.datetime,
    not_after: dt.datetime,
    *,
    server: bool = True,
    client: bool = True,
) -> KeyPair:
    """A certificate signed by `ca` for `dns_names`, for TLS servers and (Qdrant's peers authenticate
    each other with theirs) clients."""
    key = new_key()
    ca_certificate = ca.parsed
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey), "the operator's CAs have EC keys"
    usages = [
        *([ExtendedKeyUsageOID.SERVER_AUTH] if server else []),
        *([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []),
    ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(not_after, ca_certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return KeyPair(certificate_pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key))


def load_pair(certificate: str | None, key: str | None) -> KeyPair | None:
    """The pair when both parse and the key is the certificate's; `None` otherwise."""
    if not certificate or not key:
        return None
    try:
        parsed = x509.load_pem_x509_certificate(certificate.encode())
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError):
        return None
    public = parsed.public_key()
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
        public, ec.EllipticCurvePublicKey
    ):
        return None
    if private.public_key().public_numbers() != public.public_numbers():
        return None
    return KeyPair(certificate, key)


def load_bundle(bundle: str | None) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; none when it does not parse."""
    if not bundle:
        return []
    try:
        return x509.load_pem_x509_certificates(bundle.encode())
    except ValueError:
        return []


def bundle_pem(certificates: Iterable[x509.Certificate]) -> str:
    """A PEM bundle, each certificate once, in the given order."""
    seen: dict[bytes, str] = {}
    for certificate in certificates:
        seen.setdefault(certificate.fingerprint(hashes.SHA256()), certificate_pem(certificate))
    return "".join(seen.values())


def issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` signed `certificate`."""
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return names.get_values_for_type(x509.DNSName)


def fingerprint(pem: str) -> str:
    """A digest of PEM text (certificates are public: their digest may go into annotations)."""
    return hashlib.sha256(pem.encode()).hexdigest()

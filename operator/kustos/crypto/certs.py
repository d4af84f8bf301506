"""A private CA and a TLS serving certificate for the Secrets Manager API (PEM in, PEM out).

No I/O: the caller stores the PEMs (a Kubernetes Secret) and hands clients the CA. Keys are
ECDSA P-256; the CA is valid for 10 years, the serving certificate for `SERVING_DAYS` (1
year), with the given DNS names and IP addresses as subjectAltNames. `renew_serving_cert`
issues a new serving certificate from the same CA (clients keep trusting it), and
`needs_renewal` says when: once less than a third of the certificate's life is left.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "SERVING_DAYS",
    "ServingCert",
    "issue_serving_cert",
    "needs_renewal",
    "not_after",
    "renew_serving_cert",
]

SERVING_DAYS = 365


@dataclass(frozen=True)
class ServingCert:
    ca_pem: bytes
    cert_pem: bytes  # the serving certificate followed by the CA (a chain)
    key_pem: bytes
    ca_key_pem: bytes = b""  # kept so that renewals are signed by the same CA

    def __repr__(self) -> str:
        return "ServingCert(...)"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kustos"),
        ]
    )


def issue_serving_cert(
    hosts: list[str], now: datetime | None = None, days: int = SERVING_DAYS
) -> ServingCert:
    """A fresh CA and a certificate for `hosts` (DNS names or IP addresses) signed by it."""
    now = now or datetime.now(UTC)
    start = now - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Kustos API CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _serving(ca, ca_key, hosts, now, days)


def renew_serving_cert(
    ca_pem: bytes,
    ca_key_pem: bytes,
    hosts: list[str],
    now: datetime | None = None,
    days: int = SERVING_DAYS,
) -> ServingCert:
    """A new serving certificate (and key) for `hosts`, signed by the existing CA.
    ValueError when the PEMs are not a CA certificate and its EC private key."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC private key")
    return _serving(ca, ca_key, hosts, now or datetime.now(UTC), days)


def not_after(cert_pem: bytes) -> datetime:
    """When the first certificate in `cert_pem` expires (aware UTC)."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def needs_renewal(cert_pem: bytes, now: datetime | None = None) -> bool:
    """True once less than a third of the certificate's validity is left (or it is
    unreadable or expired)."""
    now = now or datetime.now(UTC)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return True
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < life / 3


def _serving(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: list[str],
    now: datetime,
    days: int,
) -> ServingCert:
    start = now - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else "kustos-api"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_key_pem = ca_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ServingCert(
        ca_pem=ca_pem,
        cert_pem=cert.public_bytes(pem) + ca_pem,
        key_pem=key_pem,
        ca_key_pem=ca_key_pem,
    )

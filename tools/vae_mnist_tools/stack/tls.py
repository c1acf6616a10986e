"""A private certificate authority and a server certificate, made afresh for each stack.

The server speaks HTTPS with a certificate for 127.0.0.1 and localhost, signed by a CA that
exists only for this stack: clients trust it through `MLFLOW_TRACKING_SERVER_CERT_PATH` (the CA's
certificate, public), and the CA's private key is never written, so nothing can sign another
certificate that those clients would trust. The server's own key is a 0600 file.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vae_mnist_tools.stack.credentials import write_private

FOLDER = "tls"
VALID_DAYS = 365
NAMES = ("localhost",)
ADDRESSES = ("127.0.0.1",)
SIGNS_CERTIFICATES = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA's certificate: what clients trust
    certificate: Path  # the server's certificate, signed by the CA
    key: Path  # the server's private key (0600)


def paths(stack: Path) -> Certificates:
    folder = stack / FOLDER
    return Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vae-mnist team stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create(stack: Path, *, now: datetime.datetime | None = None) -> Certificates:
    """Make the CA and the server's certificate and key in `<stack>/tls/`; return their paths."""
    now = now or datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("vae-mnist stack CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(SIGNS_CERTIFICATES, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternative = [x509.DNSName(n) for n in NAMES]
    alternative += [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(ADDRESSES[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    found = paths(stack)
    found.ca.parent.mkdir(exist_ok=True)  # readable: every client needs the CA
    found.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.ca.chmod(0o644)
    found.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    write_private(
        found.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return found

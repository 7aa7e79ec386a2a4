"""A development certificate authority for the suite's TLS (`venue tls init`).

Writes, into one directory (the VENUE_TLS_DIR of services/platform/tls.py):

    ca.crt, ca.key               the CA (keep ca.key off the venue's devices)
    <service>.crt, .key          one per service: server and client certificate,
                                 with the names and addresses it is reached by
    clients/<name>.crt, .key     client certificates for devices, apps, tools

Keys are ECDSA P-256; certificates last `days` (a development CA: a venue's
production certificates come from its own PKI, through the same variables).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.platform.config import SERVICE_PORTS

# Where the suite's services are reached on one machine and in docker-compose.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
# Client certificates written by default: the simulated world and tools, and one
# per kind of device a venue has.
DEFAULT_CLIENTS = (
    "sim",
    "gate",
    "ride-scanner",
    "reader",
    "camera",
    "point-of-sale",
    "photographer",
    "door-lock",
    "kiosk",
)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "venue twin (development)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class DevCA:
    """A CA that issues the suite's server and client certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def create(cls, days: int = 365, name: str = "venue twin development CA") -> DevCA:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, directory: Path) -> DevCA:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("ca.key is not an ECDSA key")
        return cls(cert, key)

    def save(self, directory: Path) -> None:
        _write(directory / "ca.crt", self.cert.public_bytes(serialization.Encoding.PEM))
        _write(directory / "ca.key", _key_pem(self.key), private=True)

    def issue(
        self,
        common_name: str,
        cert_path: Path,
        hosts: Sequence[str] = (),
        server: bool = False,
        days: int = 365,
    ) -> Issued:
        """A leaf certificate: for a server (its SANs, also usable as a client
        certificate) or for a client only."""
        key = _key()
        now = dt.datetime.now(dt.UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if hosts:
            builder = builder.add_extension(_san(hosts), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_path = cert_path.with_suffix(".key")
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _write(key_path, _key_pem(key), private=True)
        return Issued(cert_path, key_path)


def init(
    directory: Path,
    hosts: Sequence[str] = (),
    clients: Sequence[str] = DEFAULT_CLIENTS,
    services: Sequence[str] = tuple(SERVICE_PORTS),
    days: int = 365,
) -> list[Issued]:
    """A CA (kept if the directory already has one), a certificate per service
    reachable at localhost, 127.0.0.1, its own name and `hosts`, and the client
    certificates named."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.crt").exists() and (directory / "ca.key").exists():
        ca = DevCA.load(directory)
    else:
        ca = DevCA.create(days)
        ca.save(directory)
    issued = [
        ca.issue(
            name,
            directory / f"{name}.crt",
            hosts=[*DEFAULT_HOSTS, name, *hosts],
            server=True,
            days=days,
        )
        for name in services
    ]
    issued += [ca.issue(name, directory / "clients" / f"{name}.crt", days=days) for name in clients]
    return issued

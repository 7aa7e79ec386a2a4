"""TLS for the suite's gRPC: off by default (plaintext on localhost), on when
configured, with client certificates required when asked (mutual TLS, what a
venue's gates, scanners, readers, cameras and tills should use).

Variables (docs/tls.md has the walk-through):

- VENUE_TLS_DIR (unset: plaintext): a directory written by `venue tls init`:
  ca.crt, <service>.crt/.key, clients/<name>.crt/.key.
- VENUE_TLS_CA_FILE ($VENUE_TLS_DIR/ca.crt): the CA (PEM) that signs the servers
  and, with mutual TLS, the clients.
- VENUE_TLS_CERT_FILE / VENUE_TLS_KEY_FILE ($VENUE_TLS_DIR/<service>.crt/.key): a
  service's certificate chain and key; it is also its client certificate.
- VENUE_TLS_CLIENT_AUTH (none): `require` refuses connections without a client
  certificate signed by the CA (mutual TLS).
- VENUE_TLS_CLIENT (sim): tools (the simulated world, bench, the runner) present
  $VENUE_TLS_DIR/clients/<name>.crt; or VENUE_TLS_CLIENT_CERT_FILE / _KEY_FILE.

Setting any of VENUE_TLS_DIR / VENUE_TLS_CA_FILE turns TLS on. Services verify
each other's certificates (the addresses in VENUE_<SERVICE>_ADDR must be names or
IPs the certificates carry) and present their own certificate as clients.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


class TlsConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Tls:
    """What one process needs for TLS: the CA it trusts, the certificate it
    presents (as a server, or as a client), and whether servers demand one."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None
    require_client_cert: bool = False

    def server_credentials(self) -> grpc.ServerCredentials:
        if self.cert is None or self.key is None:
            raise TlsConfigError("a TLS server needs VENUE_TLS_CERT_FILE and VENUE_TLS_KEY_FILE")
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.ca if self.require_client_cert else None,
            require_client_auth=self.require_client_cert,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def _read(name: str, path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise TlsConfigError(f"{name}: {err}") from None


def _client_auth(env: Mapping[str, str]) -> bool:
    mode = env.get("VENUE_TLS_CLIENT_AUTH", "none").strip().lower() or "none"
    if mode not in ("none", "require"):
        raise TlsConfigError(f"VENUE_TLS_CLIENT_AUTH: expected none or require, got {mode!r}")
    return mode == "require"


def _ca(env: Mapping[str, str]) -> bytes | None:
    directory = env.get("VENUE_TLS_DIR", "")
    ca_file = env.get("VENUE_TLS_CA_FILE") or (str(Path(directory) / "ca.crt") if directory else "")
    return _read("VENUE_TLS_CA_FILE", ca_file) if ca_file else None


def for_service(service: str, env: Mapping[str, str]) -> Tls | None:
    """A service's TLS (server certificate, doubling as its client certificate
    towards the other services), or None for plaintext."""
    ca = _ca(env)
    if ca is None:
        return None
    directory = Path(env.get("VENUE_TLS_DIR", "."))
    cert = env.get("VENUE_TLS_CERT_FILE") or directory / f"{service}.crt"
    key = env.get("VENUE_TLS_KEY_FILE") or directory / f"{service}.key"
    return Tls(
        ca=ca,
        cert=_read("VENUE_TLS_CERT_FILE", cert),
        key=_read("VENUE_TLS_KEY_FILE", key),
        require_client_cert=_client_auth(env),
    )


def for_client(env: Mapping[str, str] | None = None) -> Tls | None:
    """A tool's TLS (the world's devices and apps, bench, the runner), or None for
    plaintext. The client certificate is optional: without one, a server that
    requires client certificates refuses the connection."""
    env = os.environ if env is None else env
    ca = _ca(env)
    if ca is None:
        return None
    # A service's own certificate (a container's health check) serves as well.
    cert_file = env.get("VENUE_TLS_CLIENT_CERT_FILE") or env.get("VENUE_TLS_CERT_FILE", "")
    key_file = env.get("VENUE_TLS_CLIENT_KEY_FILE") or env.get("VENUE_TLS_KEY_FILE", "")
    if not cert_file and env.get("VENUE_TLS_DIR"):
        name = env.get("VENUE_TLS_CLIENT", "sim")
        candidate = Path(env["VENUE_TLS_DIR"]) / "clients" / f"{name}.crt"
        if candidate.exists():
            cert_file, key_file = str(candidate), str(candidate.with_suffix(".key"))
    if bool(cert_file) != bool(key_file):
        raise TlsConfigError("give both VENUE_TLS_CLIENT_CERT_FILE and VENUE_TLS_CLIENT_KEY_FILE")
    return Tls(
        ca=ca,
        cert=_read("VENUE_TLS_CLIENT_CERT_FILE", cert_file) if cert_file else None,
        key=_read("VENUE_TLS_CLIENT_KEY_FILE", key_file) if key_file else None,
    )


def channel(
    target: str,
    tls: Tls | None,
    options: Sequence[tuple[str, Any]] | None = None,
    interceptors: Sequence[Any] | None = None,
) -> grpc.aio.Channel:
    """An aio channel to `target`: TLS with `tls`, plaintext without."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(
        target, tls.channel_credentials(), options=options, interceptors=interceptors
    )


def sync_channel(target: str, tls: Tls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, tls.channel_credentials())


def add_port(server: Any, address: str, tls: Tls | None) -> int:
    """Listen on `address`: TLS with `tls`, plaintext without; the port, 0 on failure."""
    if tls is None:
        return int(server.add_insecure_port(address))
    return int(server.add_secure_port(address, tls.server_credentials()))

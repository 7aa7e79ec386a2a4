"""TLS with a development CA, as real processes: identity and location serve
mutual TLS with certificates from `venue tls init`; location fetches identity's
keys and follows its stream over TLS; a reader with its device certificate
streams pings. Plaintext, a server certificate from a CA the client does not
trust, a client certificate from another CA, and no client certificate at all
are each refused at the connection."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.platform import tls
from services.runner import devca
from services.runner.cli import main as venue
from services.runner.suite import Suite, auto_ports
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc
from venue.location.v1 import location_pb2 as pb
from venue.location.v1 import location_pb2_grpc

pytestmark = pytest.mark.e2e

SERVICES = ["identity", "location"]


def test_venue_tls_init_writes_a_ca_service_and_device_certificates(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    venue(["tls", "init", "--dir", str(out), "--host", "twin.example", "--client", "gate-7"])
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    served = x509.load_pem_x509_certificate((out / "location.crt").read_bytes())
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "location", "twin.example"} <= set(names.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    served.verify_directly_issued_by(ca)
    gate = x509.load_pem_x509_certificate((out / "clients" / "gate-7.crt").read_bytes())
    gate.verify_directly_issued_by(ca)
    usage = gate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (out / "clients" / "gate-7.key").stat().st_mode & 0o077 == 0
    # A second run keeps the CA: certificates issued before stay valid.
    venue(["tls", "init", "--dir", str(out), "--client", "gate-8"])
    assert (out / "ca.crt").read_bytes() == ca.public_bytes(serialization.Encoding.PEM)


async def _serving(address: str, secure: tls.Tls | None) -> grpc.StatusCode:
    async with tls.channel(address, secure) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as err:
            return err.code()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


async def test_mutual_tls_between_services_and_devices(tmp_path: Path, database_url: str) -> None:
    ours, theirs = tmp_path / "tls", tmp_path / "other-ca"
    devca.init(ours, clients=["sim", "reader"])
    devca.init(theirs, clients=["reader"])
    name = f"e2e_tls_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    suite = Suite(
        data_dir=tmp_path / "data",
        database_url=urlunsplit(urlsplit(database_url)._replace(path=f"/{name}")),
        services=SERVICES,
        ports=auto_ports(SERVICES),
        log_dir=tmp_path / "logs",
        env={
            "VENUE_TLS_DIR": str(ours),
            "VENUE_TLS_CLIENT_AUTH": "require",
            "VENUE_LOG_LEVEL": "WARNING",
        },
    )
    # The runner waits for SERVING over mutual TLS with the "sim" certificate.
    await suite.start(timeout=120)
    try:
        ca = (ours / "ca.crt").read_bytes()

        def client(directory: Path, name: str) -> tls.Tls:
            return tls.Tls(
                ca=ca,
                cert=(directory / "clients" / f"{name}.crt").read_bytes(),
                key=(directory / "clients" / f"{name}.key").read_bytes(),
            )

        reader_tls = client(ours, "reader")
        for service in SERVICES:
            address = suite.addresses[service]
            assert await _serving(address, reader_tls) == grpc.StatusCode.OK
            # Plaintext, to a TLS port.
            assert await _serving(address, None) == grpc.StatusCode.UNAVAILABLE
            # A device certificate from another CA.
            intruder = tls.Tls(
                ca=ca, cert=client(theirs, "reader").cert, key=client(theirs, "reader").key
            )
            assert await _serving(address, intruder) == grpc.StatusCode.UNAVAILABLE
            # No client certificate at all (an app, or a device that lost its own).
            assert await _serving(address, tls.Tls(ca=ca)) == grpc.StatusCode.UNAVAILABLE
            # A client that trusts another CA does not trust this server.
            fooled = tls.Tls(
                ca=(theirs / "ca.crt").read_bytes(), cert=reader_tls.cert, key=reader_tls.key
            )
            assert await _serving(address, fooled) == grpc.StatusCode.UNAVAILABLE

        # Over TLS, the whole path works: identity issues a reader's token; location
        # verifies it with keys it fetched from identity over mutual TLS, and acks.
        admin = bearer(await suite.admin_token())
        async with (
            tls.channel(suite.addresses["identity"], suite.tls) as ichannel,
            tls.channel(suite.addresses["location"], reader_tls) as lchannel,
        ):
            identity = identity_pb2_grpc.IdentityServiceStub(ichannel)
            device = await identity.RegisterDevice(
                ipb.RegisterDeviceRequest(
                    kind=common_pb2.DEVICE_KIND_READER, name="Gateway", venue_ref="lantern-bay-park"
                ),
                metadata=admin,
            )
            token = await identity.IssueToken(
                ipb.IssueTokenRequest(
                    device_secret=ipb.DeviceSecret(
                        device_id=device.device.device_id, secret=device.secret
                    )
                )
            )
            location = location_pb2_grpc.LocationServiceStub(lchannel)
            batch_id = uuid.uuid4().hex

            async def pings() -> AsyncIterator[pb.IngestPingsRequest]:
                yield pb.IngestPingsRequest(
                    batch=pb.PingBatch(
                        batch_id=batch_id,
                        band_uids=[f"TLS-{uuid.uuid4().hex[:10]}"],
                        reader_ids=["rd.jungle-reach.plaza"],
                        observed_at_unix_ms=[int(time.time() * 1000)],
                        rssi_dbm=[-50],
                    )
                )

            acks = [
                ack
                async for ack in location.IngestPings(
                    pings(), metadata=bearer(token.access_token), timeout=30
                )
            ]
            assert [a.batch_id for a in acks] == [batch_id]
            zones = await location.ListZones(pb.ListZonesRequest(), metadata=admin, timeout=10)
            assert zones.zones
    finally:
        await suite.stop()

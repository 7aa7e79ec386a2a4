"""TLS settings from the environment, and hearing a refused stream out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.platform import tls
from services.platform.handlers import hear_out
from services.runner import devca


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    devca.init(folder, clients=["sim", "reader"], services=["identity"])
    return folder


def test_plaintext_unless_configured() -> None:
    assert tls.for_service("identity", {}) is None
    assert tls.for_client({}) is None


def test_a_service_serves_its_own_certificate(tls_dir: Path) -> None:
    found = tls.for_service("identity", {"VENUE_TLS_DIR": str(tls_dir)})
    assert found is not None
    assert found.ca == (tls_dir / "ca.crt").read_bytes()
    assert found.cert == (tls_dir / "identity.crt").read_bytes()
    assert found.key == (tls_dir / "identity.key").read_bytes()
    assert not found.require_client_cert
    mutual = tls.for_service(
        "identity", {"VENUE_TLS_DIR": str(tls_dir), "VENUE_TLS_CLIENT_AUTH": "REQUIRE"}
    )
    assert mutual is not None and mutual.require_client_cert


def test_a_tool_presents_the_named_client_certificate(tls_dir: Path) -> None:
    default = tls.for_client({"VENUE_TLS_DIR": str(tls_dir)})
    assert default is not None and default.cert == (tls_dir / "clients" / "sim.crt").read_bytes()
    reader = tls.for_client({"VENUE_TLS_DIR": str(tls_dir), "VENUE_TLS_CLIENT": "reader"})
    assert reader is not None and reader.key == (tls_dir / "clients" / "reader.key").read_bytes()
    # Only a CA: TLS without a client certificate (an app).
    app = tls.for_client({"VENUE_TLS_CA_FILE": str(tls_dir / "ca.crt")})
    assert app is not None and app.cert is None and app.key is None


def test_bad_settings_name_the_variable(tls_dir: Path) -> None:
    with pytest.raises(tls.TlsConfigError, match="VENUE_TLS_CLIENT_AUTH"):
        tls.for_service("identity", {"VENUE_TLS_DIR": str(tls_dir), "VENUE_TLS_CLIENT_AUTH": "on"})
    with pytest.raises(tls.TlsConfigError, match="VENUE_TLS_CERT_FILE"):
        tls.for_service("queue", {"VENUE_TLS_DIR": str(tls_dir)})
    with pytest.raises(tls.TlsConfigError, match="VENUE_TLS_CA_FILE"):
        tls.for_client({"VENUE_TLS_CA_FILE": str(tls_dir / "nope.crt")})
    with pytest.raises(tls.TlsConfigError, match="both"):
        tls.for_client(
            {
                "VENUE_TLS_CA_FILE": str(tls_dir / "ca.crt"),
                "VENUE_TLS_CLIENT_CERT_FILE": str(tls_dir / "clients" / "sim.crt"),
            }
        )


async def _client(gaps: list[float], read: list[int]) -> AsyncIterator[int]:
    for n, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        read.append(n)
        yield n


async def test_hear_out_reads_until_the_client_half_closes() -> None:
    read: list[int] = []
    await hear_out(_client([0, 0, 0.05], read), quiet_s=0.5, within_s=5)
    assert read == [0, 1, 2]


async def test_hear_out_stops_at_a_pause_and_at_its_limit() -> None:
    read: list[int] = []
    started = time.monotonic()
    await hear_out(_client([0, 0, 10], read), quiet_s=0.1, within_s=5)
    assert read == [0, 1]
    assert time.monotonic() - started < 2
    chatty: list[int] = []
    started = time.monotonic()
    await hear_out(_client([0.02] * 1000, chatty), quiet_s=0.5, within_s=0.3)
    assert 0 < len(chatty) < 1000
    assert time.monotonic() - started < 2

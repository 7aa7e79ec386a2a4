"""`venue up` as a user runs it: a real process tree, real sockets, real
PostgreSQL. A client registers a guest, links a band, resolves it at a gate,
deactivates it and sees the refusal; Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from services.platform.config import ROOT
from tests.support.stubs import bearer
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb
from venue.identity.v1 import identity_pb2_grpc

pytestmark = pytest.mark.e2e


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float = 90) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            line = await stream.readline()
            if not line:
                raise RuntimeError(f"venue up ended early:\n{seen}")
            seen += line.decode()
    return seen


async def test_venue_up_registers_links_resolves_and_refuses(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENUE_")}
    env.pop("DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.runner.cli",
        "up",
        "--auto-ports",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        banner = await read_until(process.stdout, "ready")
        address = re.search(r"^identity\s+(\S+)$", banner, re.M)
        admin = re.search(r"^staff token \(admin\): (\S+)$", banner, re.M)
        assert address and admin, banner
        async with grpc.aio.insecure_channel(address[1]) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            email = f"ann-{uuid.uuid4().hex[:6]}@example.com"
            guest = (
                await stub.CreateGuest(
                    pb.CreateGuestRequest(
                        display_name="Ann", email=email, password="correct horse battery"
                    )
                )
            ).guest
            token = (
                await stub.IssueToken(
                    pb.IssueTokenRequest(
                        guest_password=pb.GuestPassword(
                            email=email, password="correct horse battery"
                        )
                    )
                )
            ).access_token
            band = (
                await stub.LinkBand(
                    pb.LinkBandRequest(guest_id=guest.guest_id, band_uid="E2E-BAND-0001"),
                    metadata=bearer(token),
                )
            ).band
            device = await stub.RegisterDevice(
                pb.RegisterDeviceRequest(
                    kind=common_pb2.DEVICE_KIND_GATE, name="Main gate 1", venue_ref="gate-main-1"
                ),
                metadata=bearer(admin[1]),
            )
            gate = (
                await stub.IssueToken(
                    pb.IssueTokenRequest(
                        device_secret=pb.DeviceSecret(
                            device_id=device.device.device_id, secret=device.secret
                        )
                    )
                )
            ).access_token
            resolved = await stub.ResolveBand(
                pb.ResolveBandRequest(band_uid="E2E-BAND-0001"), metadata=bearer(gate)
            )
            assert (resolved.guest_id, resolved.active) == (guest.guest_id, True)
            await stub.DeactivateBand(
                pb.DeactivateBandRequest(band_id=band.band_id, reason=pb.DEACTIVATION_REASON_LOST),
                metadata=bearer(token),
            )
            refused = await stub.ResolveBand(
                pb.ResolveBandRequest(band_uid="E2E-BAND-0001"), metadata=bearer(gate)
            )
            assert not refused.active
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), 60)
        code = await asyncio.wait_for(process.wait(), 60)
    assert code == 0, rest.decode()
    assert "stopped" in rest.decode()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "processes left running after Ctrl-C"

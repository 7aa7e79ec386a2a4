"""Access as real processes beside identity, on the mall (GBP, no gates): a
guest with a band taps at a counter's line and pays at a till; access is killed
and restarted, rebuilds its band map from identity's stream, and still admits
the band; a deactivation is then refused at the line and at the till."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from services.platform.config import ROOT
from services.platform.validation import to_timestamp
from services.runner.suite import Suite, auto_ports
from tests.support.people import device, staff
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as pb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc

pytestmark = pytest.mark.e2e

MALL = ROOT / "venues" / "millbrook-galleria.yaml"
LINE = "ap.patty-and-bun.standby"
TILL = "till.thread-and-needle.1"
MERCHANT = "thread-and-needle"


async def embedded_pg(action: str, data_dir: Path) -> str:
    """Start or stop the embedded PostgreSQL from a fresh interpreter: pgserver
    changes user with a plain fork(), and a fork of this process, which runs
    gRPC servers of other tests, can crash in gRPC's fork handlers."""
    code = (
        "import sys; from pathlib import Path; from services.platform import embedded_pg as e; "
        f"print(e.{action}(Path(sys.argv[1])) or '')"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(data_dir), cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"embedded PostgreSQL {action} failed"
    lines = out.decode().strip().splitlines()
    return lines[-1] if lines else ""


async def test_access_on_the_mall_survives_a_restart(tmp_path: Path) -> None:
    services = ["identity", "access"]
    data_dir = tmp_path / "data"
    suite = Suite(
        data_dir=data_dir,
        services=services,
        ports=auto_ports(services),
        venue_file=MALL,
        database_url=await embedded_pg("ensure_running", data_dir),
    )
    try:
        await suite.start()
        admin = await suite.admin_token()
        async with (
            grpc.aio.insecure_channel(suite.addresses["identity"]) as ichannel,
            grpc.aio.insecure_channel(suite.addresses["access"]) as achannel,
        ):
            identity: identity_pb2_grpc.IdentityServiceAsyncStub = (
                identity_pb2_grpc.IdentityServiceStub(ichannel)
            )
            access: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(
                achannel
            )
            guest = await identity.CreateGuest(
                ipb.CreateGuestRequest(display_name="Ann"), metadata=bearer(admin)
            )
            uid = f"MALL-{uuid.uuid4().hex[:10]}"
            band = await identity.LinkBand(
                ipb.LinkBandRequest(guest_id=guest.guest.guest_id, band_uid=uid),
                metadata=bearer(admin),
            )
            scanner = await device(identity, admin, common_pb2.DEVICE_KIND_RIDE_SCANNER, LINE)
            till = await device(identity, admin, common_pb2.DEVICE_KIND_POINT_OF_SALE, TILL)
            desk_token = await staff(identity, admin, common_pb2.STAFF_ROLE_DESK)
            await access.TopUp(
                pb.TopUpRequest(
                    party_id=guest.guest.party_id,
                    amount=common_pb2.Money(minor_units=2000, currency="GBP"),
                    funding_source=pb.FUNDING_SOURCE_CASH,
                    idempotency_key=uuid.uuid4().hex,
                ),
                metadata=bearer(desk_token),
            )

            async def tap() -> pb.TapResponse:
                return await access.Tap(
                    pb.TapRequest(
                        access_point_id=LINE,
                        band_uid=uid,
                        tapped_at=to_timestamp(datetime.now(UTC)),
                        idempotency_key=uuid.uuid4().hex,
                    ),
                    metadata=scanner,
                )

            async def charge(minor: int) -> pb.ChargeResponse:
                return await access.Charge(
                    pb.ChargeRequest(
                        merchant_id=MERCHANT,
                        band_uid=uid,
                        amount=common_pb2.Money(minor_units=minor, currency="GBP"),
                        charged_at=to_timestamp(datetime.now(UTC)),
                        idempotency_key=uuid.uuid4().hex,
                    ),
                    metadata=till,
                )

            assert (await tap()).decision == pb.TAP_DECISION_ALLOW
            assert (await charge(1250)).result == pb.CHARGE_RESULT_APPROVED
            await suite.restart("access", kill=True)
            assert (await tap()).decision == pb.TAP_DECISION_ALLOW
            second = await charge(750)
            assert second.result == pb.CHARGE_RESULT_APPROVED
            over = await charge(1)
            assert over.decline_reason == pb.DECLINE_REASON_INSUFFICIENT_FUNDS
            await identity.DeactivateBand(
                ipb.DeactivateBandRequest(
                    band_id=band.band.band_id, reason=ipb.DEACTIVATION_REASON_STOLEN
                ),
                metadata=bearer(admin),
            )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.0
            while (refused := await tap()).decision == pb.TAP_DECISION_ALLOW:
                assert loop.time() < deadline, "deactivated band still allowed after 1 s"
            assert refused.deny_reason == pb.DENY_REASON_BAND_DEACTIVATED
            assert (await charge(1)).decline_reason == pb.DECLINE_REASON_BAND_DEACTIVATED
    finally:
        await suite.stop()
        await embedded_pg("stop", data_dir)

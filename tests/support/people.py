"""Credentials for the people and devices of an end-to-end test, made through
a running identity service the way the venue's back office makes them."""

from __future__ import annotations

from tests.support.stubs import bearer
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc


async def device(
    stub: identity_pb2_grpc.IdentityServiceAsyncStub, admin: str, kind: int, ref: str
) -> tuple[tuple[str, str], ...]:
    """Metadata carrying the token of a new device of `kind` placed at `ref`."""
    made = await stub.RegisterDevice(
        ipb.RegisterDeviceRequest(kind=kind, name=ref, venue_ref=ref),  # type: ignore[arg-type]
        metadata=bearer(admin),
    )
    token = await stub.IssueToken(
        ipb.IssueTokenRequest(
            device_secret=ipb.DeviceSecret(device_id=made.device.device_id, secret=made.secret)
        )
    )
    return bearer(token.access_token)


async def staff(
    stub: identity_pb2_grpc.IdentityServiceAsyncStub, admin: str, role: int, name: str = "Desk"
) -> str:
    """The token of a new member of staff with `role`."""
    made = await stub.CreateStaff(
        ipb.CreateStaffRequest(display_name=name, role=role),  # type: ignore[arg-type]
        metadata=bearer(admin),
    )
    token = await stub.IssueToken(
        ipb.IssueTokenRequest(
            staff_secret=ipb.StaffSecret(staff_id=made.staff.staff_id, secret=made.secret)
        )
    )
    return token.access_token

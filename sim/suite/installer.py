"""Day zero, as the venue's installer does it: every device of the venue file is
registered with the administrator's token and gets its own credential, and the
staff the day needs (the ticket desk, the ops team) get theirs.

Registrations carry idempotency keys made of the venue's and the device's ids, so
a second day on the same installation finds its devices already there and is
handed the same credentials (identity derives a device's secret from its id).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.venue_model import AccessPointKind, CameraKind, Venue
from sim.suite.calls import Caller
from sim.suite.channels import Stubs
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb

K = common_pb2.DeviceKind
KIND_OF_POINT = {
    AccessPointKind.PARK_ENTRY: K.DEVICE_KIND_GATE,
    AccessPointKind.PARK_EXIT: K.DEVICE_KIND_GATE,
    AccessPointKind.RIDE_STANDBY: K.DEVICE_KIND_RIDE_SCANNER,
    AccessPointKind.RIDE_RETURN_MERGE: K.DEVICE_KIND_RIDE_SCANNER,
    AccessPointKind.RIDE_BOARDING: K.DEVICE_KIND_RIDE_SCANNER,
    AccessPointKind.PHOTO_KIOSK: K.DEVICE_KIND_KIOSK,
    AccessPointKind.HOTEL_DOOR: K.DEVICE_KIND_DOOR_LOCK,
    AccessPointKind.STAFF_DOOR: K.DEVICE_KIND_DOOR_LOCK,
}


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    venue_ref: str
    kind: int
    name: str
    zone: str
    node: str


@dataclass
class Credentials:
    admin: str
    desk: str = ""
    ops: str = ""
    # Device tokens by the venue object each device serves.
    devices: dict[str, str] = field(default_factory=dict)
    registered: int = 0


def devices_of(venue: Venue, gateways: list[str]) -> list[DeviceSpec]:
    """Every device the venue file names, with the kind of credential it needs, and
    the readers' gateways (one per zone: a READER credential naming the zone)."""
    specs: list[DeviceSpec] = [
        DeviceSpec(z, K.DEVICE_KIND_READER, f"Reader gateway {z}", z, "") for z in gateways
    ]
    for r in venue.readers:
        specs.append(DeviceSpec(r.id, K.DEVICE_KIND_READER, f"Reader {r.id}", r.zone, r.node))
    for a in venue.access_points:
        specs.append(DeviceSpec(a.id, KIND_OF_POINT[a.kind], a.name or a.id, a.zone, a.node))
    for t in venue.tills:
        specs.append(DeviceSpec(t.id, K.DEVICE_KIND_POINT_OF_SALE, f"Till {t.id}", t.zone, t.node))
    for c in venue.cameras:
        kind = K.DEVICE_KIND_CAMERA if c.kind is CameraKind.RIDE else K.DEVICE_KIND_PHOTOGRAPHER
        specs.append(DeviceSpec(c.id, kind, c.name or c.id, c.zone, c.node))
    return specs


class Installer:
    def __init__(
        self, stubs: Stubs, call: Caller, venue: Venue, admin_token: str, gateways: list[str]
    ) -> None:
        self.gateways = gateways
        self.stubs = stubs
        self.call = call
        self.venue = venue
        self.credentials = Credentials(admin=admin_token)

    async def install(self, concurrency: int = 16) -> Credentials:
        """Staff first, then every device (callers may start the desk between)."""
        await self.staff()
        return await self.devices(concurrency)

    async def staff(self) -> Credentials:
        """The desk's and the ops team's staff credentials."""
        await self._staff()
        return self.credentials

    async def devices(self, concurrency: int = 16) -> Credentials:
        specs = devices_of(self.venue, self.gateways)
        gate = asyncio.Semaphore(concurrency)
        gateway_specs = set(specs[: len(self.gateways)])

        async def one(spec: DeviceSpec) -> None:
            async with gate:
                token = await self._device(spec)
            if token:
                key = f"gateway:{spec.venue_ref}" if spec in gateway_specs else spec.venue_ref
                self.credentials.devices[key] = token
                self.credentials.registered += 1

        await asyncio.gather(*(one(s) for s in specs))
        return self.credentials

    async def _device(self, spec: DeviceSpec) -> str | None:
        reply = await self.call(
            "identity.RegisterDevice",
            self.stubs.identity.RegisterDevice,
            ipb.RegisterDeviceRequest(
                kind=spec.kind,  # type: ignore[arg-type]
                name=spec.name[:100],
                place=common_pb2.Place(zone_id=spec.zone, node_id=spec.node),
                venue_ref=spec.venue_ref,
                idempotency_key=f"install:{self.venue.id}:{spec.kind}:{spec.venue_ref}"[:128],
            ),
            self.credentials.admin,
        )
        if reply is None:
            return None
        return await self._token(
            ipb.IssueTokenRequest(
                device_secret=ipb.DeviceSecret(
                    device_id=reply.device.device_id, secret=reply.secret
                )
            )
        )

    async def _staff(self) -> None:
        for role, name in (
            (common_pb2.STAFF_ROLE_DESK, "Ticket desk"),
            (common_pb2.STAFF_ROLE_OPS, "Operations"),
        ):
            reply = await self.call(
                "identity.CreateStaff",
                self.stubs.identity.CreateStaff,
                ipb.CreateStaffRequest(
                    display_name=name,
                    role=role,
                    idempotency_key=f"install:{self.venue.id}:staff:{role}",
                ),
                self.credentials.admin,
            )
            if reply is None:
                continue
            token = await self._token(
                ipb.IssueTokenRequest(
                    staff_secret=ipb.StaffSecret(staff_id=reply.staff.staff_id, secret=reply.secret)
                )
            )
            if role == common_pb2.STAFF_ROLE_DESK:
                self.credentials.desk = token or ""
            else:
                self.credentials.ops = token or ""

    async def _token(self, request: ipb.IssueTokenRequest) -> str | None:
        reply = await self.call("identity.IssueToken", self.stubs.identity.IssueToken, request)
        return reply.access_token if reply is not None else None

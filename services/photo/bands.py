"""Who wears a band, asked of identity (photographer taps and kiosk claims).

Photo keeps no band UIDs: a tap is resolved once, as the service "photo", and
only the guest's pseudonymous ids are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

from services.platform.errors import InvalidArgument, Unavailable
from venue.identity.v1 import identity_pb2, identity_pb2_grpc

# As identity accepts them (its rules.band_uid).
_BAND_UID = re.compile(r"^[0-9A-Za-z:_-]{4,64}$")


@dataclass(frozen=True)
class Wearer:
    guest_id: str
    party_id: str
    active: bool


def band_uid(value: str, field: str = "band_uid") -> str:
    if not value:
        raise InvalidArgument(field, "required")
    if not _BAND_UID.match(value):
        raise InvalidArgument(field, "4 to 64 characters of 0-9, A-Z, a-z, ':', '_' or '-'")
    return value


class Bands:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)

    async def resolve(self, uid: str) -> Wearer | None:
        """The band's wearer, or None for a band identity does not know."""
        try:
            reply = await self._stub.ResolveBand(identity_pb2.ResolveBandRequest(band_uid=uid))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise Unavailable("identity is unavailable; try the tap again") from None
        return Wearer(reply.guest_id, reply.party_id, reply.active)

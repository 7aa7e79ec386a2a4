"""The queue service's one call into identity, made as the service "queue": the
party of a guest its copy of identity's stream does not hold yet."""

from __future__ import annotations

import grpc

from services.platform.errors import Unavailable
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc

TIMEOUT = 3.0


class IdentityClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub: identity_pb2_grpc.IdentityServiceAsyncStub = (
            identity_pb2_grpc.IdentityServiceStub(channel)
        )

    async def party_of(self, guest_id: str) -> str | None:
        """The guest's party; None when identity has no such guest (or erased them)."""
        try:
            reply = await self._stub.GetGuest(
                ipb.GetGuestRequest(guest_id=guest_id), timeout=TIMEOUT
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise Unavailable("cannot look the guest up right now; try again") from None
        return reply.guest.party_id or None

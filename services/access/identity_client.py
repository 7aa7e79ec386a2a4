"""The few questions access asks identity directly: a band not (yet) in the
band map, and a guest or party not (yet) in it."""

from __future__ import annotations

import grpc

from services.access.decisions import Wearer
from venue.identity.v1 import identity_pb2 as ipb
from venue.identity.v1 import identity_pb2_grpc


class IdentityClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub: identity_pb2_grpc.IdentityServiceAsyncStub = (
            identity_pb2_grpc.IdentityServiceStub(channel)
        )

    @property
    def stub(self) -> identity_pb2_grpc.IdentityServiceAsyncStub:
        return self._stub

    async def resolve_band(self, uid: str) -> Wearer | None:
        try:
            reply = await self._stub.ResolveBand(ipb.ResolveBandRequest(band_uid=uid))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return Wearer(
            reply.band_id, reply.guest_id, reply.party_id, reply.active, reply.role, reply.height_cm
        )

    async def guest(self, guest_id: str) -> tuple[str, int] | None:
        """(party_id, role) of a guest, None when identity has no such guest."""
        try:
            reply = await self._stub.GetGuest(ipb.GetGuestRequest(guest_id=guest_id))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply.guest.party_id, reply.guest.role

    async def party_exists(self, party_id: str) -> bool:
        try:
            await self._stub.GetParty(ipb.GetPartyRequest(party_id=party_id))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def party_members(self, party_id: str) -> set[str] | None:
        """The guest ids of a party's members, None when identity has no such party."""
        try:
            reply = await self._stub.GetParty(ipb.GetPartyRequest(party_id=party_id))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return {m.guest_id for m in reply.party.members}

"""The queue service's calls into access, made as the service "queue": park
tickets held by a party (a booking needs one for today where the venue has
gates), and the passes a booking puts into access (a RETURN_TIME or
VIRTUAL_QUEUE entitlement per guest, its window when a group is called, its
revocation when a booking ends).

Every write carries an idempotency key derived from the booking and guest, so
a retried write (after a lost reply or a restart) issues one pass, not two.
"""

from __future__ import annotations

from datetime import date, datetime

import grpc

from services.queue.bookings import VIRTUAL_QUEUE
from services.queue.messages import time_range
from services.queue.store import PendingPass
from venue.access.v1 import access_pb2 as apb
from venue.access.v1 import access_pb2_grpc
from venue.common.v1 import common_pb2

# Statuses after which the same call may succeed later.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
TIMEOUT = 3.0


class AccessUnavailable(Exception):
    """Access did not answer; the same call may succeed later."""


class AccessRefused(Exception):
    """Access refused the call for good (no such guest, a bad request)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _raise(err: grpc.aio.AioRpcError) -> None:
    if err.code() in TRANSIENT:
        raise AccessUnavailable(err.code().name) from err
    raise AccessRefused(err.code(), err.details() or "") from err


class AccessClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub: access_pb2_grpc.AccessServiceAsyncStub = access_pb2_grpc.AccessServiceStub(
            channel
        )

    async def ticket_holders(self, party_id: str, day: date) -> set[str]:
        """Guests of the party with an active park ticket valid on `day`."""
        holders: set[str] = set()
        token = ""
        wanted = (day.year, day.month, day.day)
        while True:
            request = apb.ListEntitlementsRequest(
                party_id=party_id,
                kinds=[apb.ENTITLEMENT_KIND_PARK_TICKET],
                page=common_pb2.PageRequest(page_size=200, page_token=token),
            )
            try:
                reply = await self._stub.ListEntitlements(request, timeout=TIMEOUT)
            except grpc.aio.AioRpcError as err:
                _raise(err)
                raise  # pragma: no cover - _raise always raises
            for entitlement in reply.entitlements:
                if entitlement.status != apb.ENTITLEMENT_STATUS_ACTIVE:
                    continue
                dates = entitlement.park_ticket.valid_dates
                if any((d.year, d.month, d.day) == wanted for d in dates):
                    holders.add(entitlement.guest_id)
            token = reply.next_page_token
            if not token:
                return holders

    async def issue(self, p: PendingPass) -> str:
        """Create the guest's pass; returns its entitlement id."""
        request = apb.CreateEntitlementRequest(
            guest_id=p.guest_id,
            external_ref=p.booking_id,
            idempotency_key=f"queue-pass-{p.booking_id}-{p.guest_id}",
        )
        window = _window(p.window_start, p.window_end)
        if p.kind == VIRTUAL_QUEUE:
            request.virtual_queue_pass.CopyFrom(
                apb.VirtualQueuePass(
                    attraction_id=p.attraction_id,
                    booking_id=p.booking_id,
                    boarding_group=p.boarding_group,
                )
            )
            if window is not None:
                request.virtual_queue_pass.window.CopyFrom(window)
        else:
            request.return_time.CopyFrom(
                apb.ReturnTime(attraction_id=p.attraction_id, booking_id=p.booking_id)
            )
            if window is not None:
                request.return_time.window.CopyFrom(window)
        try:
            reply = await self._stub.CreateEntitlement(request, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as err:
            _raise(err)
            raise  # pragma: no cover
        return str(reply.entitlement.entitlement_id)

    async def send_window(self, p: PendingPass) -> None:
        """A virtual-queue group was called: its pass gets its window."""
        window = _window(p.window_start, p.window_end)
        if window is None:
            return
        request = apb.UpdateEntitlementRequest(
            entitlement_id=p.entitlement_id,
            window=window,
            idempotency_key=f"queue-call-{p.booking_id}-{p.guest_id}",
        )
        try:
            await self._stub.UpdateEntitlement(request, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as err:
            _raise(err)

    async def revoke(self, p: PendingPass) -> None:
        if not p.entitlement_id:
            return
        request = apb.RevokeEntitlementRequest(
            entitlement_id=p.entitlement_id,
            reason=p.revoke_reason,  # type: ignore[arg-type]
        )
        try:
            await self._stub.RevokeEntitlement(request, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return  # nothing left to revoke
            _raise(err)


def _window(start: datetime | None, end: datetime | None) -> common_pb2.TimeRange | None:
    if start is None or end is None:
        return None
    return time_range(start, end)

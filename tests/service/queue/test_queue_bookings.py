"""Return times and virtual queues against the real access service: tickets
checked in access, one pass per guest written into it, revoked when a booking
ends; the capacity and holding rules; who may book, see and cancel what."""

from __future__ import annotations

import uuid

from tests.service.conftest import Guest
from tests.service.queue.conftest import Queue
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as apb
from venue.queue.v1 import queue_pb2 as pb

RIDE = "river-expedition-cruise"


def key() -> str:
    return uuid.uuid4().hex


async def ticketed(queue: Queue, name: str = "Ann") -> Guest:
    guest = await queue.identity.guest(name)
    await queue.ticket(guest.guest_id)
    return guest


async def test_a_booked_return_time_becomes_a_pass_in_access(queue: Queue) -> None:
    guest = await ticketed(queue)
    reply = await queue.stub.BookReturnTime(
        pb.BookReturnTimeRequest(
            attraction_id=RIDE, guest_ids=[guest.guest_id], idempotency_key=key()
        ),
        metadata=bearer(guest.token),
    )
    booking = reply.booking
    assert booking.status == pb.BOOKING_STATUS_CONFIRMED
    assert len(booking.entitlement_ids) == 1
    passes = await queue.passes(guest.party_id)
    assert [p.entitlement_id for p in passes] == list(booking.entitlement_ids)
    assert passes[0].kind == apb.ENTITLEMENT_KIND_RETURN_TIME
    assert passes[0].return_time.booking_id == booking.booking_id
    assert passes[0].return_time.window == booking.window

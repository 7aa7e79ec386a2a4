"""Return times and virtual queues against the real access service: tickets
checked in access, one pass per guest written into it and revoked when a
booking ends; capacity and holding rules; who may book, see and cancel what.

Each test books its own guests on its own attractions: the service and its
day are shared by the session."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.queue import bookings as rules
from services.queue.messages import ts
from tests.service.conftest import GATE, Guest
from tests.service.queue.conftest import Queue
from tests.service.queue.test_queue_waits import eventually, next_event, service_token
from tests.support.stubs import bearer, expect_error
from venue.access.v1 import access_pb2 as apb
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.queue.v1 import queue_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED = grpc.StatusCode.FAILED_PRECONDITION
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
RIDE_SCANNER = common_pb2.DEVICE_KIND_RIDE_SCANNER

VQ_RIDE = "canopy-wings"  # the park's one virtual queue
NO_BOOKINGS = "sky-carpets"  # neither return times nor a virtual queue


def key() -> str:
    return uuid.uuid4().hex


def reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


async def ticketed(queue: Queue, name: str = "Ann") -> Guest:
    guest = await queue.identity.guest(name)
    await queue.ticket(guest.guest_id)
    return guest


async def child(queue: Queue, adult: Guest, ticket: bool = True) -> str:
    reply = await queue.identity.stub.AddChild(
        ipb.AddChildRequest(party_id=adult.party_id, display_name="Kid", height_cm=120),
        metadata=bearer(adult.token),
    )
    if ticket:
        await queue.ticket(reply.guest.guest_id)
    return str(reply.guest.guest_id)


async def book(
    queue: Queue, token: str, ride: str, guests: list[str], window: Any = None, idem: str = ""
) -> pb.Booking:
    request = pb.BookReturnTimeRequest(
        attraction_id=ride, guest_ids=guests, idempotency_key=idem or key()
    )
    if window is not None:
        request.window.CopyFrom(window)
    return (await queue.stub.BookReturnTime(request, metadata=bearer(token))).booking


async def slots(queue: Queue, ride: str, token: str) -> list[pb.ReturnTimeSlot]:
    reply = await queue.stub.ListReturnTimeSlots(
        pb.ListReturnTimeSlotsRequest(attraction_id=ride), metadata=bearer(token)
    )
    return list(reply.slots)


async def bookings_count(queue: Queue, party_id: str) -> int:
    return await queue.count("queue.bookings", "party_id = $1", party_id)


def window_of(booking: pb.Booking) -> common_pb2.TimeRange:
    return common_pb2.TimeRange(start=booking.window.start, end=booking.window.end)


# --- return times ----------------------------------------------------------------------


async def test_a_return_time_is_booked_for_the_party_and_each_guest_gets_a_pass(
    queue: Queue,
) -> None:
    ride = "river-expedition-cruise"
    adult = await ticketed(queue)
    kid = await child(queue, adult)
    before = {s.window.start.seconds: s.remaining for s in await slots(queue, ride, adult.token)}
    booking = await book(queue, adult.token, ride, [adult.guest_id, kid])
    assert booking.status == pb.BOOKING_STATUS_CONFIRMED
    assert booking.kind == pb.BOOKING_KIND_RETURN_TIME
    assert booking.party_id == adult.party_id
    assert list(booking.guest_ids) == [adult.guest_id, kid]
    # Unset window: the earliest with room, which the board showed first.
    assert booking.window.start.seconds == min(before)
    passes = {p.entitlement_id: p for p in await queue.passes(adult.party_id)}
    assert set(passes) == set(booking.entitlement_ids) and len(passes) == 2
    for guest, entitlement_id in zip(booking.guest_ids, booking.entitlement_ids, strict=True):
        granted = passes[entitlement_id]
        assert granted.guest_id == guest
        assert granted.kind == apb.ENTITLEMENT_KIND_RETURN_TIME
        assert granted.return_time.attraction_id == ride
        assert granted.return_time.booking_id == booking.booking_id
        assert granted.return_time.window == booking.window
    after = {s.window.start.seconds: s.remaining for s in await slots(queue, ride, adult.token)}
    assert after[booking.window.start.seconds] == before[booking.window.start.seconds] - 2


async def test_a_retried_booking_is_one_booking_and_one_pass_per_guest(queue: Queue) -> None:
    guest = await ticketed(queue)
    idem = key()
    first = await book(queue, guest.token, "buccaneer-bay-voyage", [guest.guest_id], idem=idem)
    again = await book(queue, guest.token, "buccaneer-bay-voyage", [guest.guest_id], idem=idem)
    assert again.booking_id == first.booking_id
    assert list(again.entitlement_ids) == list(first.entitlement_ids)
    assert await bookings_count(queue, guest.party_id) == 1
    assert len(await queue.passes(guest.party_id)) == 1
    # The same key with another request is a mistake, not a retry.
    await expect_error(
        book(queue, guest.token, "temple-of-the-jade-serpent", [guest.guest_id], idem=idem),
        FAILED,
    )
    assert await bookings_count(queue, guest.party_id) == 1


async def test_a_chosen_window_is_booked_and_one_not_offered_refused(queue: Queue) -> None:
    ride = "temple-of-the-jade-serpent"
    guest = await ticketed(queue)
    offered = await slots(queue, ride, guest.token)
    later = offered[-1]
    booking = await book(queue, guest.token, ride, [guest.guest_id], window=later.window)
    assert booking.window == later.window
    other = await ticketed(queue)
    shifted = common_pb2.TimeRange(start=later.window.start, end=later.window.end)
    shifted.start.seconds += 60
    await expect_error(book(queue, other.token, ride, [other.guest_id], shifted), INVALID, "window")
    assert await bookings_count(queue, other.party_id) == 0


async def test_a_window_never_holds_more_than_the_share_of_what_the_ride_loads(
    queue: Queue,
) -> None:
    """Every window offers the venue's share of the ride's throughput as the
    twin knows it, never above the nameplate."""
    ride = "savanna-safari-trek"
    guest = await ticketed(queue)
    state = (
        await queue.stub.GetAttractionState(
            pb.GetAttractionStateRequest(attraction_id=ride), metadata=bearer(queue.ops)
        )
    ).state
    rate = min(state.throughput_per_hour, state.nameplate_capacity_per_hour)
    share = queue.app.live.lines.return_share
    for slot in await slots(queue, ride, guest.token):
        hours = (slot.window.end.ToSeconds() - slot.window.start.ToSeconds()) / 3600
        assert 0 < slot.remaining <= rate * share * hours


async def test_a_guest_without_a_ticket_for_today_books_nothing(queue: Queue) -> None:
    adult = await ticketed(queue)
    kid = await child(queue, adult, ticket=False)
    err = await expect_error(
        book(queue, adult.token, "thunder-canyon-mine-train", [adult.guest_id, kid]), FAILED
    )
    assert reason(err) == "NO_VALID_TICKET"
    assert await bookings_count(queue, adult.party_id) == 0
    assert await queue.passes(adult.party_id) == []


async def test_the_holding_limit_and_one_booking_per_attraction(queue: Queue) -> None:
    guest = await ticketed(queue)
    rides = ["bramble-creek-flume", "summit-yeti-express", "dino-time-rover"]
    assert queue.app.live.lines.max_holdings == len(rides)
    for ride in rides:
        await book(queue, guest.token, ride, [guest.guest_id])
    err = await expect_error(book(queue, guest.token, rides[0], [guest.guest_id]), FAILED)
    assert reason(err) == "ALREADY_BOOKED"
    err = await expect_error(book(queue, guest.token, "starlight-flight", [guest.guest_id]), FAILED)
    assert reason(err) == "HOLDING_LIMIT"
    assert await bookings_count(queue, guest.party_id) == len(rides)
    assert len(await queue.passes(guest.party_id)) == len(rides)


async def test_concurrent_bookings_never_pass_the_holding_limit(queue: Queue) -> None:
    guest = await ticketed(queue)
    rides = [
        "rocket-coaster",
        "nebula-mountain",
        "galaxy-blasters",
        "plunge-tower",
        "cartoon-express",
    ]
    results = await asyncio.gather(
        *(book(queue, guest.token, ride, [guest.guest_id]) for ride in rides),
        return_exceptions=True,
    )
    booked = [r for r in results if isinstance(r, pb.Booking)]
    assert len(booked) == queue.app.live.lines.max_holdings
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and reason(r) == "HOLDING_LIMIT"
        for r in results
        if not isinstance(r, pb.Booking)
    )
    assert await bookings_count(queue, guest.party_id) == len(booked)


async def test_an_attraction_without_return_times_sells_none(queue: Queue) -> None:
    guest = await ticketed(queue)
    err = await expect_error(book(queue, guest.token, NO_BOOKINGS, [guest.guest_id]), FAILED)
    assert reason(err) == "RETURN_TIME_NOT_OFFERED"
    assert await slots(queue, NO_BOOKINGS, guest.token) == []


async def test_return_time_bad_input_names_the_field_and_writes_nothing(queue: Queue) -> None:
    guest = await ticketed(queue)
    ride = "seven-gems-mine-coaster"
    g = guest.guest_id
    backwards = common_pb2.TimeRange()
    backwards.start.seconds, backwards.end.seconds = 2_000_000_000, 1_999_999_000
    cases: list[tuple[pb.BookReturnTimeRequest, str]] = [
        (pb.BookReturnTimeRequest(guest_ids=[g], idempotency_key=key()), "attraction_id"),
        (pb.BookReturnTimeRequest(attraction_id="x/y", guest_ids=[g], idempotency_key=key()),
         "attraction_id"),
        (pb.BookReturnTimeRequest(attraction_id=ride, idempotency_key=key()), "guest_ids"),
        (pb.BookReturnTimeRequest(attraction_id=ride, guest_ids=[g, g], idempotency_key=key()),
         "guest_ids"),
        (pb.BookReturnTimeRequest(attraction_id=ride, guest_ids=["nope"], idempotency_key=key()),
         "guest_ids[0]"),
        (pb.BookReturnTimeRequest(attraction_id=ride, guest_ids=[g]), "idempotency_key"),
        (pb.BookReturnTimeRequest(
            attraction_id=ride, guest_ids=[g], window=backwards, idempotency_key=key()),
         "window.end"),
        (pb.BookReturnTimeRequest(
            attraction_id=ride, guest_ids=[g], window=common_pb2.TimeRange(),
            idempotency_key=key()),
         "window.start"),
        (pb.BookReturnTimeRequest(
            attraction_id=ride, guest_ids=[str(uuid.uuid4()) for _ in range(rules.MAX_PARTY + 1)],
            idempotency_key=key()),
         "guest_ids"),
    ]  # fmt: skip
    for request, field in cases:
        await expect_error(
            queue.stub.BookReturnTime(request, metadata=bearer(guest.token)), INVALID, field
        )
    await expect_error(book(queue, guest.token, "no-such-ride", [g]), NOT_FOUND)
    await expect_error(book(queue, guest.token, ride, [str(uuid.uuid4())]), NOT_FOUND)
    assert await bookings_count(queue, guest.party_id) == 0
    assert await queue.passes(guest.party_id) == []


async def test_who_may_book_a_return_time(queue: Queue) -> None:
    ride = "glowing-river-journey"
    guest = await ticketed(queue)
    stranger = await ticketed(queue, "Eve")
    # A guest books only for their own party.
    await expect_error(book(queue, stranger.token, ride, [guest.guest_id]), DENIED)
    # Devices and services other than the app's helpers may not book at all.
    _, gate = await queue.identity.device(GATE, "ap.gate.in1")
    routing = await service_token(queue.identity, "routing")
    for token in (gate, routing):
        await expect_error(book(queue, token, ride, [guest.guest_id]), DENIED)
    await expect_error(
        queue.stub.BookReturnTime(
            pb.BookReturnTimeRequest(
                attraction_id=ride, guest_ids=[guest.guest_id], idempotency_key=key()
            )
        ),
        UNAUTH,
    )
    assert await bookings_count(queue, guest.party_id) == 0
    # Guest services staff book for any party.
    booking = await book(queue, queue.desk, ride, [guest.guest_id])
    assert booking.party_id == guest.party_id


# --- virtual queue ------------------------------------------------------------------------


async def test_a_virtual_queue_join_is_called_and_its_pass_gets_the_window(
    queue: Queue,
) -> None:
    ops = bearer(queue.ops)
    itinerary = await service_token(queue.identity, "itinerary")
    watch = queue.stub.WatchQueueEvents(
        pb.WatchQueueEventsRequest(
            start=common_pb2.StreamCursor(from_now=True),
            kinds=[pb.QUEUE_EVENT_KIND_BOOKING_CREATED, pb.QUEUE_EVENT_KIND_BOOKING_CALLED],
            attraction_ids=[VQ_RIDE],
        ),
        metadata=bearer(itinerary),
    )
    guest = await ticketed(queue)
    joined = (
        await queue.stub.JoinVirtualQueue(
            pb.JoinVirtualQueueRequest(
                attraction_id=VQ_RIDE, guest_ids=[guest.guest_id], idempotency_key=key()
            ),
            metadata=bearer(guest.token),
        )
    ).booking
    assert joined.kind == pb.BOOKING_KIND_VIRTUAL_QUEUE
    assert joined.boarding_group >= 1
    assert len(joined.entitlement_ids) == 1
    seen: dict[str, pb.Booking] = {}
    while (
        joined.booking_id not in seen or seen[joined.booking_id].status != pb.BOOKING_STATUS_CALLED
    ):
        event = await next_event(watch, timeout=10.0)
        which = event.WhichOneof("event")
        assert which is not None
        booking = getattr(event, which).booking
        seen[booking.booking_id] = booking
    called = seen[joined.booking_id]
    assert called.HasField("window") and called.HasField("called_at")
    watch.cancel()

    async def pass_has_window() -> bool:
        (granted,) = await queue.passes(guest.party_id)
        return granted.virtual_queue_pass.window == called.window

    await eventually(pass_has_window, timeout=10.0)
    (granted,) = await queue.passes(guest.party_id)
    assert granted.kind == apb.ENTITLEMENT_KIND_VIRTUAL_QUEUE
    assert granted.virtual_queue_pass.boarding_group == joined.boarding_group
    got = await queue.stub.GetBooking(
        pb.GetBookingRequest(booking_id=joined.booking_id), metadata=ops
    )
    assert got.booking.status == pb.BOOKING_STATUS_CALLED
    # A join after that call lands in a later group, which is called in turn.
    late = await ticketed(queue, "Late")
    later = (
        await queue.stub.JoinVirtualQueue(
            pb.JoinVirtualQueueRequest(
                attraction_id=VQ_RIDE, guest_ids=[late.guest_id], idempotency_key=key()
            ),
            metadata=bearer(late.token),
        )
    ).booking
    assert later.boarding_group > joined.boarding_group

    async def late_called() -> bool:
        found = await queue.stub.GetBooking(
            pb.GetBookingRequest(booking_id=later.booking_id), metadata=ops
        )
        return found.booking.status == pb.BOOKING_STATUS_CALLED

    await eventually(late_called, timeout=20.0)


async def test_virtual_queue_refusals_write_nothing(queue: Queue) -> None:
    guest = await ticketed(queue)
    stranger = await ticketed(queue, "Eve")

    def join(ride: str, guests: list[str], idem: str | None = None) -> pb.JoinVirtualQueueRequest:
        return pb.JoinVirtualQueueRequest(
            attraction_id=ride, guest_ids=guests, idempotency_key=key() if idem is None else idem
        )

    err = await expect_error(
        queue.stub.JoinVirtualQueue(
            join("river-expedition-cruise", [guest.guest_id]), metadata=bearer(guest.token)
        ),
        FAILED,
    )
    assert reason(err) == "VIRTUAL_QUEUE_NOT_OFFERED"
    for request, field in [
        (join("", [guest.guest_id]), "attraction_id"),
        (join(VQ_RIDE, []), "guest_ids"),
        (join(VQ_RIDE, ["bad id"]), "guest_ids[0]"),
        (join(VQ_RIDE, [guest.guest_id], idem=""), "idempotency_key"),
    ]:
        await expect_error(
            queue.stub.JoinVirtualQueue(request, metadata=bearer(guest.token)), INVALID, field
        )
    await expect_error(
        queue.stub.JoinVirtualQueue(
            join(VQ_RIDE, [guest.guest_id]), metadata=bearer(stranger.token)
        ),
        DENIED,
    )
    routing = await service_token(queue.identity, "routing")
    await expect_error(
        queue.stub.JoinVirtualQueue(join(VQ_RIDE, [guest.guest_id]), metadata=bearer(routing)),
        DENIED,
    )
    assert await bookings_count(queue, guest.party_id) == 0


# --- cancel, rebook, read ---------------------------------------------------------------------


async def test_cancel_revokes_the_passes_and_frees_the_places(queue: Queue) -> None:
    ride = "spring-dog-sprint"
    guest = await ticketed(queue)
    booking = await book(queue, guest.token, ride, [guest.guest_id])
    start = booking.window.start.seconds
    before = {s.window.start.seconds: s.remaining for s in await slots(queue, ride, guest.token)}
    stranger = await ticketed(queue, "Eve")
    await expect_error(
        queue.stub.CancelBooking(
            pb.CancelBookingRequest(booking_id=booking.booking_id), metadata=bearer(stranger.token)
        ),
        DENIED,
    )
    await expect_error(
        queue.stub.CancelBooking(
            pb.CancelBookingRequest(booking_id=booking.booking_id, reason=pb.CANCEL_REASON_STAFF),
            metadata=bearer(guest.token),
        ),
        INVALID,
        "reason",
    )
    for bad, field in [("", "booking_id"), ("not-a-uuid", "booking_id")]:
        await expect_error(
            queue.stub.CancelBooking(
                pb.CancelBookingRequest(booking_id=bad), metadata=bearer(guest.token)
            ),
            INVALID,
            field,
        )
    await expect_error(
        queue.stub.CancelBooking(
            pb.CancelBookingRequest(booking_id=str(uuid.uuid4())), metadata=bearer(guest.token)
        ),
        NOT_FOUND,
    )
    (granted,) = await queue.passes(guest.party_id)
    assert granted.status == apb.ENTITLEMENT_STATUS_ACTIVE
    cancelled = (
        await queue.stub.CancelBooking(
            pb.CancelBookingRequest(booking_id=booking.booking_id), metadata=bearer(guest.token)
        )
    ).booking
    assert cancelled.status == pb.BOOKING_STATUS_CANCELLED
    assert cancelled.cancel_reason == pb.CANCEL_REASON_GUEST
    again = await queue.stub.CancelBooking(
        pb.CancelBookingRequest(booking_id=booking.booking_id), metadata=bearer(guest.token)
    )
    assert again.booking.cancelled_at == cancelled.cancelled_at
    (granted,) = await queue.passes(guest.party_id)
    assert granted.status == apb.ENTITLEMENT_STATUS_REVOKED
    after = {s.window.start.seconds: s.remaining for s in await slots(queue, ride, guest.token)}
    assert after[start] == before[start] + 1
    # The guest may book that attraction again.
    await book(queue, guest.token, ride, [guest.guest_id])


async def test_rebook_moves_the_booking_and_its_passes(queue: Queue) -> None:
    ride = "toy-blaster-midway"
    guest = await ticketed(queue)
    booking = await book(queue, guest.token, ride, [guest.guest_id])
    offered = [s for s in await slots(queue, ride, guest.token) if s.window != booking.window]
    target = offered[-1].window
    me = bearer(guest.token)
    err = await expect_error(
        queue.stub.Rebook(
            pb.RebookRequest(
                booking_id=booking.booking_id, window=window_of(booking), idempotency_key=key()
            ),
            metadata=me,
        ),
        FAILED,
    )
    assert reason(err) == "SAME_WINDOW"
    for request, field in [
        (pb.RebookRequest(booking_id=booking.booking_id, idempotency_key=key()), "window"),
        (pb.RebookRequest(window=target, idempotency_key=key()), "booking_id"),
        (pb.RebookRequest(booking_id=booking.booking_id, window=target), "idempotency_key"),
    ]:
        await expect_error(queue.stub.Rebook(request, metadata=me), INVALID, field)
    stranger = await ticketed(queue, "Eve")
    await expect_error(
        queue.stub.Rebook(
            pb.RebookRequest(booking_id=booking.booking_id, window=target, idempotency_key=key()),
            metadata=bearer(stranger.token),
        ),
        DENIED,
    )
    assert await bookings_count(queue, guest.party_id) == 1
    moved = (
        await queue.stub.Rebook(
            pb.RebookRequest(booking_id=booking.booking_id, window=target, idempotency_key=key()),
            metadata=me,
        )
    ).booking
    assert moved.window == target and moved.status == pb.BOOKING_STATUS_CONFIRMED
    assert moved.rebooked_from_booking_id == booking.booking_id
    old = await queue.stub.GetBooking(
        pb.GetBookingRequest(booking_id=booking.booking_id), metadata=me
    )
    assert old.booking.status == pb.BOOKING_STATUS_CANCELLED
    assert old.booking.cancel_reason == pb.CANCEL_REASON_REBOOKED
    passes = {p.entitlement_id: p for p in await queue.passes(guest.party_id)}
    assert passes[old.booking.entitlement_ids[0]].status == apb.ENTITLEMENT_STATUS_REVOKED
    new_pass = passes[moved.entitlement_ids[0]]
    assert new_pass.status == apb.ENTITLEMENT_STATUS_ACTIVE
    assert new_pass.return_time.window == target
    # A cancelled booking does not move again.
    err = await expect_error(
        queue.stub.Rebook(
            pb.RebookRequest(
                booking_id=booking.booking_id, window=offered[0].window, idempotency_key=key()
            ),
            metadata=me,
        ),
        FAILED,
    )
    assert reason(err) == "BOOKING_NOT_ACTIVE"


async def test_a_guest_sees_only_their_own_partys_bookings(queue: Queue) -> None:
    ride = "cartoon-express"
    guest = await ticketed(queue)
    kid = await child(queue, guest)
    stranger = await ticketed(queue, "Eve")
    mine = await book(queue, guest.token, ride, [guest.guest_id, kid])
    theirs = await book(queue, stranger.token, ride, [stranger.guest_id])
    cancelled = await book(queue, guest.token, "plunge-tower", [guest.guest_id])
    await queue.stub.CancelBooking(
        pb.CancelBookingRequest(booking_id=cancelled.booking_id), metadata=bearer(guest.token)
    )
    me = bearer(guest.token)
    listed = await queue.stub.ListBookings(
        pb.ListBookingsRequest(party_id=guest.party_id), metadata=me
    )
    assert [b.booking_id for b in listed.bookings] == [mine.booking_id]
    everything = await queue.stub.ListBookings(
        pb.ListBookingsRequest(party_id=guest.party_id, include_inactive=True), metadata=me
    )
    assert {b.booking_id for b in everything.bookings} == {mine.booking_id, cancelled.booking_id}
    # Pages of one, resumed by token.
    first = await queue.stub.ListBookings(
        pb.ListBookingsRequest(
            party_id=guest.party_id, include_inactive=True, page=common_pb2.PageRequest(page_size=1)
        ),
        metadata=me,
    )
    assert len(first.bookings) == 1 and first.next_page_token
    second = await queue.stub.ListBookings(
        pb.ListBookingsRequest(
            party_id=guest.party_id,
            include_inactive=True,
            page=common_pb2.PageRequest(page_size=1, page_token=first.next_page_token),
        ),
        metadata=me,
    )
    assert {first.bookings[0].booking_id, second.bookings[0].booking_id} == {
        mine.booking_id,
        cancelled.booking_id,
    }
    # Another party's list and bookings are refused, not filtered.
    await expect_error(
        queue.stub.ListBookings(pb.ListBookingsRequest(party_id=stranger.party_id), metadata=me),
        DENIED,
    )
    await expect_error(
        queue.stub.GetBooking(pb.GetBookingRequest(booking_id=theirs.booking_id), metadata=me),
        DENIED,
    )
    got = await queue.stub.GetBooking(pb.GetBookingRequest(booking_id=mine.booking_id), metadata=me)
    assert got.booking.booking_id == mine.booking_id
    # Staff and itinerary read any party's; other services and devices none.
    itinerary = await service_token(queue.identity, "itinerary")
    for token in (queue.desk, queue.ops, itinerary):
        seen = await queue.stub.ListBookings(
            pb.ListBookingsRequest(party_id=stranger.party_id), metadata=bearer(token)
        )
        assert [b.booking_id for b in seen.bookings] == [theirs.booking_id]
    routing = await service_token(queue.identity, "routing")
    _, gate = await queue.identity.device(GATE, "ap.gate.in1")
    for token in (routing, gate):
        await expect_error(
            queue.stub.GetBooking(
                pb.GetBookingRequest(booking_id=theirs.booking_id), metadata=bearer(token)
            ),
            DENIED,
        )


async def test_booking_reads_bad_input_names_the_field(queue: Queue) -> None:
    ops = bearer(queue.ops)
    for request, field in [
        (pb.ListBookingsRequest(), "party_id"),
        (pb.ListBookingsRequest(party_id="x"), "party_id"),
        (pb.ListBookingsRequest(party_id=str(uuid.uuid4()), attraction_id="a b"), "attraction_id"),
        (
            pb.ListBookingsRequest(
                party_id=str(uuid.uuid4()), page=common_pb2.PageRequest(page_token="junk")
            ),
            "page.page_token",
        ),
        (
            pb.ListBookingsRequest(
                party_id=str(uuid.uuid4()), page=common_pb2.PageRequest(page_size=-1)
            ),
            "page.page_size",
        ),
    ]:
        await expect_error(queue.stub.ListBookings(request, metadata=ops), INVALID, field)
    await expect_error(
        queue.stub.GetBooking(pb.GetBookingRequest(), metadata=ops), INVALID, "booking_id"
    )
    await expect_error(
        queue.stub.GetBooking(pb.GetBookingRequest(booking_id=str(uuid.uuid4())), metadata=ops),
        NOT_FOUND,
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListReturnTimeSlotsRequest(), "attraction_id"),
        (
            pb.ListReturnTimeSlotsRequest(attraction_id="rocket-coaster", party_size=-1),
            "party_size",
        ),
        (
            pb.ListReturnTimeSlotsRequest(
                attraction_id="rocket-coaster", party_size=rules.MAX_PARTY + 1
            ),
            "party_size",
        ),
        (
            pb.ListReturnTimeSlotsRequest(
                attraction_id="rocket-coaster",
                period=common_pb2.TimeRange(
                    start=common_pb2.TimeRange().start, end=common_pb2.TimeRange().end
                ),
                page=common_pb2.PageRequest(page_token="junk"),
            ),
            "page.page_token",
        ),
    ],
)
async def test_return_slots_bad_input_names_the_field(
    queue: Queue, request_: pb.ListReturnTimeSlotsRequest, field: str
) -> None:
    await expect_error(
        queue.stub.ListReturnTimeSlots(request_, metadata=bearer(queue.ops)), INVALID, field
    )


async def test_return_slots_for_guests_staff_and_itinerary_not_devices(queue: Queue) -> None:
    ride = "nebula-mountain"
    guest = await queue.identity.guest("Look")
    itinerary = await service_token(queue.identity, "itinerary")
    for token in (guest.token, queue.desk, queue.ops, itinerary):
        assert await slots(queue, ride, token)
    _, gate = await queue.identity.device(GATE, "ap.gate.in1")
    routing = await service_token(queue.identity, "routing")
    for token in (gate, routing):
        await expect_error(
            queue.stub.ListReturnTimeSlots(
                pb.ListReturnTimeSlotsRequest(attraction_id=ride), metadata=bearer(token)
            ),
            DENIED,
        )
    # Pages of two, in window order, with room for the party asked about.
    first = await queue.stub.ListReturnTimeSlots(
        pb.ListReturnTimeSlotsRequest(
            attraction_id=ride, party_size=4, page=common_pb2.PageRequest(page_size=2)
        ),
        metadata=bearer(guest.token),
    )
    assert len(first.slots) == 2 and first.next_page_token
    second = await queue.stub.ListReturnTimeSlots(
        pb.ListReturnTimeSlotsRequest(
            attraction_id=ride,
            party_size=4,
            page=common_pb2.PageRequest(page_size=2, page_token=first.next_page_token),
        ),
        metadata=bearer(guest.token),
    )
    starts = [s.window.start.seconds for s in [*first.slots, *second.slots]]
    assert starts == sorted(set(starts))
    assert all(s.remaining >= 4 for s in [*first.slots, *second.slots])


# --- what access tells the booking side -------------------------------------------------------


async def test_a_pass_used_at_the_merge_redeems_the_booking_and_joins_the_return_line(
    queue: Queue,
) -> None:
    """The guest taps their band at the return merge through access; the
    queue hears it on access's stream."""
    ride = "galaxy-blasters"
    merge = queue.app.live.lines.specs[ride].merge_point
    assert merge is not None
    guest = await ticketed(queue)
    booking = await book(queue, guest.token, ride, [guest.guest_id])
    assert booking.window.start.ToSeconds() <= queue.now() < booking.window.end.ToSeconds()
    band_uid = f"BAND-{uuid.uuid4().hex[:12]}"
    await queue.identity.stub.LinkBand(
        ipb.LinkBandRequest(guest_id=guest.guest_id, band_uid=band_uid),
        metadata=bearer(guest.token),
    )
    _, scanner = await queue.identity.device(RIDE_SCANNER, merge)
    before = queue.app.live.twin.lines[ride].boarded_return + len(
        queue.app.live.twin.lines[ride].returning
    )
    tap = await queue.access.Tap(
        apb.TapRequest(
            access_point_id=merge,
            band_uid=band_uid,
            tapped_at=ts(queue.now()),
            idempotency_key=key(),
        ),
        metadata=bearer(scanner),
    )
    assert tap.decision == apb.TAP_DECISION_ALLOW, tap.deny_reason
    assert tap.entitlement_id == booking.entitlement_ids[0]

    async def redeemed() -> bool:
        found = await queue.stub.GetBooking(
            pb.GetBookingRequest(booking_id=booking.booking_id), metadata=bearer(guest.token)
        )
        return found.booking.status == pb.BOOKING_STATUS_REDEEMED

    await eventually(redeemed, timeout=10.0)
    line = queue.app.live.twin.lines[ride]
    assert line.boarded_return + len(line.returning) == before + 1
    # Used: it no longer counts against the guest's holdings, nor cancels.
    err = await expect_error(
        queue.stub.CancelBooking(
            pb.CancelBookingRequest(booking_id=booking.booking_id), metadata=bearer(guest.token)
        ),
        FAILED,
    )
    assert reason(err) == "BOOKING_FINISHED"


async def test_a_pass_staff_revoke_in_access_cancels_the_booking(queue: Queue) -> None:
    guest = await ticketed(queue)
    booking = await book(queue, guest.token, "honey-bear-hollow", [guest.guest_id])
    await queue.access.RevokeEntitlement(
        apb.RevokeEntitlementRequest(
            entitlement_id=booking.entitlement_ids[0], reason=apb.REVOCATION_REASON_STAFF
        ),
        metadata=bearer(queue.desk),
    )

    async def cancelled() -> bool:
        found = await queue.stub.GetBooking(
            pb.GetBookingRequest(booking_id=booking.booking_id), metadata=bearer(queue.ops)
        )
        return found.booking.status == pb.BOOKING_STATUS_CANCELLED

    await eventually(cancelled, timeout=10.0)
    found = await queue.stub.GetBooking(
        pb.GetBookingRequest(booking_id=booking.booking_id), metadata=bearer(queue.ops)
    )
    assert found.booking.cancel_reason == pb.CANCEL_REASON_STAFF

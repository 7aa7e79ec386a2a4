"""Nudges end to end over real sockets: a virtual-queue call on the queue's
stream reaches the guest's subscribed app; a dropped subscription resumes from
its cursor with nothing missed and nothing twice; acknowledgements, history,
preferences, ops stats and the service stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.platform import service_secrets
from tests.service.conftest import Guest
from tests.service.itinerary.conftest import (
    Itinerary,
    call_group,
    next_event,
    next_nudge,
    queue_booking,
)
from tests.support.stubs import bearer, expect_error
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as ipb
from venue.itinerary.v1 import itinerary_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


class Feed:
    """An app's open subscription: read it, or drop the connection."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._responses: AsyncIterator[pb.SubscribeNudgesResponse] = call.__aiter__()

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> pb.SubscribeNudgesResponse:
        return await anext(self._responses)

    async def aclose(self) -> None:
        self._call.cancel()


def subscribe(itinerary: Itinerary, guest: Guest, cursor: str = "", from_now: bool = False) -> Feed:
    start = common_pb2.StreamCursor(cursor=cursor, from_now=from_now)
    return Feed(
        itinerary.stub.SubscribeNudges(
            pb.SubscribeNudgesRequest(start=start, app_session_id="phone-1"),
            metadata=bearer(guest.token),
        )
    )


async def board(itinerary: Itinerary, guest: Guest, attraction: str) -> None:
    await call_group(itinerary, queue_booking(guest, attraction, None))


async def test_a_called_group_reaches_the_app_with_its_plan_updated(
    itinerary: Itinerary,
) -> None:
    ann = await itinerary.family()
    plan = await itinerary.create_plan(ann, "royal-carousel")
    feed = subscribe(itinerary, ann, from_now=True)
    await asyncio.sleep(0.2)  # the subscription is registered
    await board(itinerary, ann, "rocket-coaster")
    event = await next_nudge(feed)
    nudge = event.nudge
    assert nudge.kind == pb.NUDGE_KIND_BOARDING_GROUP_CALLED
    assert nudge.guest_id == ann.guest_id and nudge.status == pb.NUDGE_STATUS_SENT
    assert "Rocket Coaster" in nudge.title and nudge.reason
    assert nudge.action.open_route.destination_poi_id == "rocket-coaster"
    assert event.cursor
    got = await itinerary.stub.GetPlan(
        pb.GetPlanRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    [booking] = got.plan.bookings
    assert booking.kind == pb.PLAN_BOOKING_KIND_VIRTUAL_QUEUE and booking.window.end.seconds
    assert got.plan.version > plan.version
    assert any(s.booking_id == booking.booking_id for s in got.plan.stops)


async def test_a_party_without_a_plan_still_gets_its_call(itinerary: Itinerary) -> None:
    bo = await itinerary.family()
    feed = subscribe(itinerary, bo, from_now=True)
    await asyncio.sleep(0.2)
    await board(itinerary, bo, "nebula-mountain")
    event = await next_nudge(feed)
    assert event.nudge.kind == pb.NUDGE_KIND_BOARDING_GROUP_CALLED


async def test_reconnect_resumes_without_loss_or_repeats(itinerary: Itinerary) -> None:
    cy = await itinerary.family()
    feed = subscribe(itinerary, cy, from_now=True)
    await asyncio.sleep(0.2)
    await board(itinerary, cy, "rocket-coaster")
    first = await next_nudge(feed)
    await feed.aclose()  # the app loses its connection
    # While it is away, two more groups are called.
    await board(itinerary, cy, "nebula-mountain")
    await board(itinerary, cy, "plunge-tower")
    await asyncio.sleep(1.0)
    resumed = subscribe(itinerary, cy, cursor=first.cursor)
    got = [await next_nudge(resumed), await next_nudge(resumed)]
    assert [e.nudge.action.open_route.destination_poi_id for e in got] == [
        "nebula-mountain",
        "plunge-tower",
    ]
    # Nothing else is pending: the next one is new.
    await board(itinerary, cy, "star-voyager")
    assert (await next_nudge(resumed)).nudge.action.open_route.destination_poi_id == (
        "star-voyager"
    )
    await resumed.aclose()
    # A fresh install (no cursor) replays the whole day once, in order.
    fresh = subscribe(itinerary, cy)
    replay = [(await next_nudge(fresh)).nudge.nudge_id for _ in range(4)]
    assert replay[0] == first.nudge.nudge_id and len(set(replay)) == 4
    await fresh.aclose()


async def test_personal_consent_off_still_gets_the_call_it_asked_for(
    itinerary: Itinerary,
) -> None:
    di = await itinerary.family(nudges=False)
    feed = subscribe(itinerary, di, from_now=True)
    await asyncio.sleep(0.2)
    await board(itinerary, di, "rocket-coaster")
    assert (await next_nudge(feed)).nudge.kind == pb.NUDGE_KIND_BOARDING_GROUP_CALLED


async def test_a_muted_kind_is_never_sent(itinerary: Itinerary) -> None:
    ed = await itinerary.family()
    await itinerary.stub.SetNudgePreferences(
        pb.SetNudgePreferencesRequest(
            preferences=pb.NudgePreferences(
                guest_id=ed.guest_id, muted_kinds=[pb.NUDGE_KIND_BOARDING_GROUP_CALLED]
            )
        ),
        metadata=bearer(ed.token),
    )
    feed = subscribe(itinerary, ed, from_now=True)
    await asyncio.sleep(0.2)
    await board(itinerary, ed, "rocket-coaster")
    with contextlib.suppress(TimeoutError):
        event = await next_nudge(feed, timeout=1.5)
        raise AssertionError(f"muted nudge sent: {event}")
    listed = await itinerary.stub.ListNudges(
        pb.ListNudgesRequest(guest_id=ed.guest_id), metadata=bearer(ed.token)
    )
    assert not listed.nudges


async def test_acknowledgements_history_and_ops_stats(itinerary: Itinerary) -> None:
    fay = await itinerary.family()
    feed = subscribe(itinerary, fay, from_now=True)
    await asyncio.sleep(0.2)
    await board(itinerary, fay, "rocket-coaster")
    await board(itinerary, fay, "nebula-mountain")
    first = (await next_nudge(feed)).nudge
    second = (await next_nudge(feed)).nudge
    ack = itinerary.stub.AcknowledgeNudge
    seen = await ack(
        pb.AcknowledgeNudgeRequest(nudge_id=first.nudge_id, ack=pb.NUDGE_ACK_KIND_SEEN),
        metadata=bearer(fay.token),
    )
    assert seen.nudge.status == pb.NUDGE_STATUS_SEEN and not seen.HasField("plan")
    for _ in range(2):  # idempotent by nature
        accepted = await ack(
            pb.AcknowledgeNudgeRequest(nudge_id=first.nudge_id, ack=pb.NUDGE_ACK_KIND_ACCEPTED),
            metadata=bearer(fay.token),
        )
        assert accepted.nudge.status == pb.NUDGE_STATUS_ACCEPTED
    await expect_error(
        ack(
            pb.AcknowledgeNudgeRequest(nudge_id=first.nudge_id, ack=pb.NUDGE_ACK_KIND_DISMISSED),
            metadata=bearer(fay.token),
        ),
        PRECONDITION,
    )
    dismissed = await ack(
        pb.AcknowledgeNudgeRequest(nudge_id=second.nudge_id, ack=pb.NUDGE_ACK_KIND_DISMISSED),
        metadata=bearer(fay.token),
    )
    assert dismissed.nudge.status == pb.NUDGE_STATUS_DISMISSED
    # History, newest first, one per page.
    page1 = await itinerary.stub.ListNudges(
        pb.ListNudgesRequest(guest_id=fay.guest_id, page=common_pb2.PageRequest(page_size=1)),
        metadata=bearer(fay.token),
    )
    assert [n.nudge_id for n in page1.nudges] == [second.nudge_id]
    page2 = await itinerary.stub.ListNudges(
        pb.ListNudgesRequest(
            guest_id=fay.guest_id,
            page=common_pb2.PageRequest(page_size=1, page_token=page1.next_page_token),
        ),
        metadata=bearer(fay.token),
    )
    assert [n.nudge_id for n in page2.nudges] == [first.nudge_id]
    assert not page2.next_page_token
    stats = await itinerary.stub.GetNudgeStats(
        pb.GetNudgeStatsRequest(), metadata=bearer(itinerary.ops_token)
    )
    [board_stats] = [k for k in stats.by_kind if k.kind == pb.NUDGE_KIND_BOARDING_GROUP_CALLED]
    assert board_stats.sent >= 2 and board_stats.accepted >= 1 and board_stats.dismissed >= 1
    assert board_stats.candidates >= board_stats.sent
    assert stats.guests_subscribed >= 1
    # Service messages sit outside the budget: the per-hour maximum counts none.
    assert stats.max_per_guest_hour == 0 and stats.median_per_guest_hour >= 1
    await expect_error(
        itinerary.stub.GetNudgeStats(pb.GetNudgeStatsRequest(), metadata=bearer(fay.token)),
        DENIED,
    )


async def test_nobody_else_reads_or_acknowledges_my_nudges(itinerary: Itinerary) -> None:
    gus = await itinerary.family()
    stranger = await itinerary.family()
    feed = subscribe(itinerary, gus, from_now=True)
    await asyncio.sleep(0.2)
    await board(itinerary, gus, "rocket-coaster")
    nudge = (await next_nudge(feed)).nudge
    await expect_error(
        itinerary.stub.AcknowledgeNudge(
            pb.AcknowledgeNudgeRequest(nudge_id=nudge.nudge_id, ack=pb.NUDGE_ACK_KIND_SEEN),
            metadata=bearer(stranger.token),
        ),
        DENIED,
    )
    await expect_error(
        itinerary.stub.ListNudges(
            pb.ListNudgesRequest(guest_id=gus.guest_id), metadata=bearer(stranger.token)
        ),
        DENIED,
    )
    # OPS may read the history (guest help).
    listed = await itinerary.stub.ListNudges(
        pb.ListNudgesRequest(guest_id=gus.guest_id), metadata=bearer(itinerary.ops_token)
    )
    assert [n.nudge_id for n in listed.nudges] == [nudge.nudge_id]


async def test_acknowledge_bad_input(itinerary: Itinerary) -> None:
    hal = await itinerary.family()
    ack = itinerary.stub.AcknowledgeNudge
    await expect_error(
        ack(pb.AcknowledgeNudgeRequest(ack=pb.NUDGE_ACK_KIND_SEEN), metadata=bearer(hal.token)),
        INVALID,
        "nudge_id",
    )
    await expect_error(
        ack(
            pb.AcknowledgeNudgeRequest(nudge_id="d2f0b7b4-7c6b-4a53-9a7e-0d2a9c1f0e11"),
            metadata=bearer(hal.token),
        ),
        INVALID,
        "ack",
    )
    await expect_error(
        ack(
            pb.AcknowledgeNudgeRequest(
                nudge_id="d2f0b7b4-7c6b-4a53-9a7e-0d2a9c1f0e11", ack=pb.NUDGE_ACK_KIND_SEEN
            ),
            metadata=bearer(hal.token),
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_preferences_for_oneself_and_by_an_adult_of_the_party(
    itinerary: Itinerary,
) -> None:
    ivy = await itinerary.family()
    jo = await itinerary.add_adult(ivy)
    stranger = await itinerary.family()
    period = common_pb2.TimeRange()
    period.start.FromDatetime(itinerary.clock_now)
    period.end.FromDatetime(itinerary.clock_now.replace(hour=23))
    prefs = pb.NudgePreferences(
        guest_id=jo.guest_id,
        quiet_periods=[period],
        muted_kinds=[pb.NUDGE_KIND_SNACK_BREAK],
        max_per_hour=1,
    )
    saved = await itinerary.stub.SetNudgePreferences(
        pb.SetNudgePreferencesRequest(preferences=prefs), metadata=bearer(ivy.token)
    )
    assert saved.preferences == prefs
    got = await itinerary.stub.GetNudgePreferences(
        pb.GetNudgePreferencesRequest(guest_id=jo.guest_id), metadata=bearer(jo.token)
    )
    assert got.preferences == prefs
    await expect_error(
        itinerary.stub.GetNudgePreferences(
            pb.GetNudgePreferencesRequest(guest_id=jo.guest_id), metadata=bearer(stranger.token)
        ),
        DENIED,
    )
    bad = [
        (pb.NudgePreferences(guest_id=jo.guest_id, max_per_hour=99), "preferences.max_per_hour"),
        (
            pb.NudgePreferences(guest_id=jo.guest_id, muted_kinds=[42]),  # type: ignore[list-item]
            "preferences.muted_kinds[0]",
        ),
        (
            pb.NudgePreferences(
                guest_id=jo.guest_id,
                quiet_periods=[common_pb2.TimeRange(start=period.end, end=period.start)],
            ),
            "preferences.quiet_periods[0].end",
        ),
        (pb.NudgePreferences(guest_id="nope"), "preferences.guest_id"),
    ]
    for value, field in bad:
        await expect_error(
            itinerary.stub.SetNudgePreferences(
                pb.SetNudgePreferencesRequest(preferences=value), metadata=bearer(jo.token)
            ),
            INVALID,
            field,
        )
    still = await itinerary.stub.GetNudgePreferences(
        pb.GetNudgePreferencesRequest(guest_id=jo.guest_id), metadata=bearer(jo.token)
    )
    assert still.preferences == prefs


async def test_the_service_stream_tells_plan_changes_and_nudges(itinerary: Itinerary) -> None:
    master = service_secrets.load_or_create_master(itinerary.identity.data_dir)
    token = await itinerary.identity.token(
        ipb.IssueTokenRequest(
            service_secret=ipb.ServiceSecret(
                service="photo", secret=service_secrets.derive(master, "photo")
            )
        )
    )
    stream = itinerary.stub.WatchItineraryEvents(
        pb.WatchItineraryEventsRequest(start=common_pb2.StreamCursor(from_now=True)),
        metadata=bearer(token),
    ).__aiter__()
    kim = await itinerary.family()
    await asyncio.sleep(0.3)
    plan = await itinerary.create_plan(kim, "royal-carousel")
    await board(itinerary, kim, "rocket-coaster")
    seen: dict[str, int] = {}
    async with asyncio.timeout(10):
        while seen.get("nudge_sent", 0) < 1:
            event = await anext(stream)
            which = event.WhichOneof("event")
            assert which is not None
            if which == "plan_changed" and event.plan_changed.plan_id == plan.plan_id:
                seen[which] = seen.get(which, 0) + 1
            if which == "nudge_sent" and event.nudge_sent.guest_id == kim.guest_id:
                seen[which] = seen.get(which, 0) + 1
                assert event.nudge_sent.kind == pb.NUDGE_KIND_BOARDING_GROUP_CALLED
    assert seen["plan_changed"] >= 1
    # Apps do not follow the service stream.
    bad = itinerary.stub.WatchItineraryEvents(
        pb.WatchItineraryEventsRequest(), metadata=bearer(kim.token)
    )
    await expect_error(anext(bad.__aiter__()), DENIED)


async def test_erasure_removes_the_guests_nudges(itinerary: Itinerary) -> None:
    lu = await itinerary.family()
    feed = subscribe(itinerary, lu, from_now=True)
    await asyncio.sleep(0.2)
    await board(itinerary, lu, "rocket-coaster")
    await next_nudge(feed)
    await feed.aclose()
    await itinerary.identity.stub.EraseGuest(
        ipb.EraseGuestRequest(guest_id=lu.guest_id), metadata=bearer(lu.token)
    )
    db = itinerary.identity.db
    async with asyncio.timeout(10):
        while await db.fetchval(
            "SELECT count(*) FROM itinerary.nudges WHERE guest_id = $1", lu.guest_id
        ):
            await asyncio.sleep(0.1)
    assert not await db.fetchval(
        "SELECT count(*) FROM itinerary.events WHERE key = $1", lu.guest_id
    )


async def test_every_cursor_resumes_exactly_after_itself(itinerary: Itinerary) -> None:
    """The whole day's feed (nudges and plan updates) replayed once; resuming
    from any event's cursor gives exactly the events after it, in order, and
    two sessions of one guest (phone and watch) each get every new event."""
    mo = await itinerary.family()
    await itinerary.create_plan(mo, "royal-carousel")
    for ride in ("rocket-coaster", "nebula-mountain"):
        await board(itinerary, mo, ride)
    whole = subscribe(itinerary, mo)
    day: list[pb.SubscribeNudgesResponse] = []
    async with asyncio.timeout(10):
        while sum(1 for e in day if e.WhichOneof("event") == "nudge") < 2:
            day.append(await anext(whole))
    await whole.aclose()
    kinds = {e.WhichOneof("event") for e in day}
    assert kinds == {"nudge", "plan_updated"}
    assert len({e.cursor for e in day}) == len(day)
    for i in (0, len(day) // 2, len(day) - 2):
        resumed = subscribe(itinerary, mo, cursor=day[i].cursor)
        rest = [await next_event(resumed) for _ in day[i + 1 :]]
        assert [e.cursor for e in rest] == [e.cursor for e in day[i + 1 :]]
        assert rest == day[i + 1 :]
        await resumed.aclose()
    # Two sessions open at once: each sees the next call once, nothing older.
    phone = subscribe(itinerary, mo, cursor=day[-1].cursor)
    watch = subscribe(itinerary, mo, cursor=day[-1].cursor)
    await asyncio.sleep(0.2)
    await board(itinerary, mo, "plunge-tower")
    for session in (phone, watch):
        got = await next_nudge(session)
        assert got.nudge.action.open_route.destination_poi_id == "plunge-tower"
        with contextlib.suppress(TimeoutError):
            extra = await next_nudge(session, timeout=0.5)
            raise AssertionError(f"shown twice: {extra}")
        await session.aclose()

"""Every RPC's bad input (a clear status naming the field, nothing written) and
its callers: the wrong kinds of caller are refused, and a guest only ever sees
their own party's plan and their own nudges."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import grpc

from tests.service.conftest import GATE, Guest
from tests.service.itinerary.conftest import Itinerary, call_group, next_nudge, queue_booking
from tests.support.stubs import bearer, expect_error
from venue.common.v1 import common_pb2
from venue.itinerary.v1 import itinerary_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNKNOWN_ID = "0b0e6f5c-2222-4f11-8d0e-7e1d2c3b4a59"


def backwards(itinerary: Itinerary) -> common_pb2.TimeRange:
    period = common_pb2.TimeRange()
    period.start.FromDatetime(itinerary.clock_now)
    period.end.FromDatetime(itinerary.clock_now - timedelta(hours=1))
    return period


async def version(itinerary: Itinerary, guest: Guest) -> int:
    got = await itinerary.stub.GetPlan(
        pb.GetPlanRequest(party_id=guest.party_id), metadata=bearer(guest.token)
    )
    return got.plan.version


async def first_event(call: Any) -> Any:
    async with asyncio.timeout(10):
        return await anext(call.__aiter__())


async def test_plan_edits_bad_input_write_nothing(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    plan = await itinerary.create_plan(ann, "rocket-coaster")
    stub, me = itinerary.stub, bearer(ann.token)
    window = common_pb2.TimeRange()
    window.start.FromDatetime(itinerary.clock_now + timedelta(hours=1))
    window.end.FromDatetime(itinerary.clock_now + timedelta(hours=2))
    meal = pb.PlanBooking(
        kind=pb.PLAN_BOOKING_KIND_MEAL_RESERVATION, poi_id="starport-cafe", window=window
    )
    with_id = pb.PlanBooking()
    with_id.CopyFrom(meal)
    with_id.booking_id = UNKNOWN_ID
    cases: list[tuple[Any, str]] = [
        (stub.GetPlan(pb.GetPlanRequest(party_id=""), metadata=me), "party_id"),
        (
            stub.GetPlan(
                pb.GetPlanRequest(
                    party_id=ann.party_id, date=common_pb2.VenueDate(year=2026, month=13, day=1)
                ),
                metadata=me,
            ),
            "date",
        ),
        (
            stub.UpdatePlanSettings(
                pb.UpdatePlanSettingsRequest(plan_id="x", settings=pb.PlanSettings()), metadata=me
            ),
            "plan_id",
        ),
        (
            stub.UpdatePlanSettings(
                pb.UpdatePlanSettingsRequest(
                    plan_id=plan.plan_id, settings=pb.PlanSettings(walking_speed_mps=-1)
                ),
                metadata=me,
            ),
            "settings.walking_speed_mps",
        ),
        (
            stub.UpdatePlanSettings(
                pb.UpdatePlanSettingsRequest(
                    plan_id=plan.plan_id, settings=pb.PlanSettings(), expected_version=-1
                ),
                metadata=me,
            ),
            "expected_version",
        ),
        (stub.AddBooking(pb.AddBookingRequest(plan_id="", booking=meal), metadata=me), "plan_id"),
        (
            stub.AddBooking(
                pb.AddBookingRequest(plan_id=plan.plan_id, booking=with_id), metadata=me
            ),
            "booking.booking_id",
        ),
        (
            stub.AddBooking(
                pb.AddBookingRequest(plan_id=plan.plan_id, booking=meal, idempotency_key="a b"),
                metadata=me,
            ),
            "idempotency_key",
        ),
        (
            stub.RemoveBooking(pb.RemoveBookingRequest(plan_id=plan.plan_id), metadata=me),
            "booking_id",
        ),
        (stub.Replan(pb.ReplanRequest(plan_id="not an id"), metadata=me), "plan_id"),
        (
            stub.Replan(
                pb.ReplanRequest(
                    plan_id=plan.plan_id, current_place=common_pb2.Place(zone_id="atlantis")
                ),
                metadata=me,
            ),
            "current_place.zone_id",
        ),
    ]
    for call, field in cases:
        await expect_error(call, INVALID, field)
    await expect_error(
        stub.Replan(pb.ReplanRequest(plan_id=UNKNOWN_ID), metadata=me), grpc.StatusCode.NOT_FOUND
    )
    assert await version(itinerary, ann) == plan.version


async def test_plan_edits_only_by_the_partys_guests(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    bea = await itinerary.add_adult(ann)
    stranger = await itinerary.family()
    plan = await itinerary.create_plan(ann, "rocket-coaster")
    _, gate = await itinerary.identity.device(GATE)
    stub = itinerary.stub
    window = common_pb2.TimeRange()
    window.start.FromDatetime(itinerary.clock_now + timedelta(hours=1))
    window.end.FromDatetime(itinerary.clock_now + timedelta(hours=2))
    meal = pb.PlanBooking(
        kind=pb.PLAN_BOOKING_KIND_MEAL_RESERVATION, poi_id="starport-cafe", window=window
    )
    for token in (stranger.token, itinerary.ops_token, gate):
        who = bearer(token)
        for call in (
            stub.UpdateWishList(pb.UpdateWishListRequest(plan_id=plan.plan_id), metadata=who),
            stub.UpdatePlanSettings(
                pb.UpdatePlanSettingsRequest(
                    plan_id=plan.plan_id, settings=pb.PlanSettings(accessible=True)
                ),
                metadata=who,
            ),
            stub.AddBooking(pb.AddBookingRequest(plan_id=plan.plan_id, booking=meal), metadata=who),
            stub.RemoveBooking(
                pb.RemoveBookingRequest(plan_id=plan.plan_id, booking_id=UNKNOWN_ID), metadata=who
            ),
            stub.Replan(pb.ReplanRequest(plan_id=plan.plan_id), metadata=who),
        ):
            await expect_error(call, DENIED)
    assert await version(itinerary, ann) == plan.version
    # The other adult of the party sees and edits the one plan.
    theirs = await stub.GetPlan(
        pb.GetPlanRequest(party_id=bea.party_id), metadata=bearer(bea.token)
    )
    assert theirs.plan.plan_id == plan.plan_id
    added = await stub.AddBooking(
        pb.AddBookingRequest(plan_id=plan.plan_id, booking=meal), metadata=bearer(bea.token)
    )
    assert await version(itinerary, ann) == added.plan.version > plan.version


async def test_nudge_rpcs_bad_input(itinerary: Itinerary) -> None:
    cy = await itinerary.family()
    me = bearer(cy.token)
    stub = itinerary.stub
    ops = bearer(itinerary.ops_token)
    streams: list[tuple[Any, str]] = [
        (
            stub.SubscribeNudges(
                pb.SubscribeNudgesRequest(start=common_pb2.StreamCursor(cursor="garbage")),
                metadata=me,
            ),
            "start.cursor",
        ),
        (
            stub.SubscribeNudges(
                pb.SubscribeNudgesRequest(
                    start=common_pb2.StreamCursor(cursor="garbage", from_now=True)
                ),
                metadata=me,
            ),
            "start",
        ),
        (
            stub.SubscribeNudges(pb.SubscribeNudgesRequest(app_session_id="x" * 101), metadata=me),
            "app_session_id",
        ),
        (
            stub.WatchItineraryEvents(
                pb.WatchItineraryEventsRequest(kinds=[42]),  # type: ignore[list-item]
                metadata=ops,
            ),
            "kinds[0]",
        ),
        (
            stub.WatchItineraryEvents(
                pb.WatchItineraryEventsRequest(start=common_pb2.StreamCursor(cursor="garbage")),
                metadata=ops,
            ),
            "start.cursor",
        ),
    ]
    for call, field in streams:
        await expect_error(first_event(call), INVALID, field)
    unary: list[tuple[Any, str]] = [
        (stub.GetNudgePreferences(pb.GetNudgePreferencesRequest(), metadata=me), "guest_id"),
        (
            stub.SetNudgePreferences(pb.SetNudgePreferencesRequest(), metadata=me),
            "preferences.guest_id",
        ),
        (stub.ListNudges(pb.ListNudgesRequest(guest_id="?"), metadata=me), "guest_id"),
        (
            stub.ListNudges(
                pb.ListNudgesRequest(guest_id=cy.guest_id, period=backwards(itinerary)),
                metadata=me,
            ),
            "period.end",
        ),
        (
            stub.ListNudges(
                pb.ListNudgesRequest(
                    guest_id=cy.guest_id, page=common_pb2.PageRequest(page_token="nope")
                ),
                metadata=me,
            ),
            "page.page_token",
        ),
        (
            stub.ListNudges(
                pb.ListNudgesRequest(
                    guest_id=cy.guest_id, page=common_pb2.PageRequest(page_size=-1)
                ),
                metadata=me,
            ),
            "page.page_size",
        ),
        (
            stub.GetNudgeStats(pb.GetNudgeStatsRequest(period=backwards(itinerary)), metadata=ops),
            "period.end",
        ),
        (
            stub.AcknowledgeNudge(
                pb.AcknowledgeNudgeRequest(
                    nudge_id=UNKNOWN_ID,
                    ack=5,  # type: ignore[arg-type]
                ),
                metadata=me,
            ),
            "ack",
        ),
    ]
    for call, field in unary:
        await expect_error(call, INVALID, field)
    assert not await itinerary.identity.db.fetchval(
        "SELECT count(*) FROM itinerary.nudge_preferences WHERE guest_id = $1", cy.guest_id
    )


async def test_nudge_rpcs_refuse_the_wrong_callers(itinerary: Itinerary) -> None:
    dee = await itinerary.family()
    eli = await itinerary.add_adult(dee)
    stranger = await itinerary.family()
    _, gate = await itinerary.identity.device(GATE)
    stub = itinerary.stub
    # Apps subscribe as a guest, to their own feed only: staff and devices may not.
    for token in (itinerary.ops_token, gate):
        await expect_error(
            first_event(stub.SubscribeNudges(pb.SubscribeNudgesRequest(), metadata=bearer(token))),
            DENIED,
        )
        await expect_error(
            stub.AcknowledgeNudge(
                pb.AcknowledgeNudgeRequest(nudge_id=UNKNOWN_ID, ack=pb.NUDGE_ACK_KIND_SEEN),
                metadata=bearer(token),
            ),
            DENIED,
        )
        await expect_error(
            stub.SetNudgePreferences(
                pb.SetNudgePreferencesRequest(
                    preferences=pb.NudgePreferences(guest_id=dee.guest_id, max_per_hour=1)
                ),
                metadata=bearer(token),
            ),
            DENIED,
        )
    await expect_error(
        stub.ListNudges(pb.ListNudgesRequest(guest_id=dee.guest_id), metadata=bearer(gate)), DENIED
    )
    await expect_error(stub.GetNudgeStats(pb.GetNudgeStatsRequest(), metadata=bearer(gate)), DENIED)
    await expect_error(
        first_event(
            stub.WatchItineraryEvents(pb.WatchItineraryEventsRequest(), metadata=bearer(gate))
        ),
        DENIED,
    )
    # A stranger may not set a guest's preferences: nothing is written.
    await expect_error(
        stub.SetNudgePreferences(
            pb.SetNudgePreferencesRequest(
                preferences=pb.NudgePreferences(guest_id=dee.guest_id, max_per_hour=1)
            ),
            metadata=bearer(stranger.token),
        ),
        DENIED,
    )
    assert not await itinerary.identity.db.fetchval(
        "SELECT count(*) FROM itinerary.nudge_preferences WHERE guest_id = $1", dee.guest_id
    )
    # Each adult's nudges are their own: the other adult of the party may read
    # the history (a parent helping), but acknowledges only their own.
    feed = stub.SubscribeNudges(
        pb.SubscribeNudgesRequest(start=common_pb2.StreamCursor(from_now=True)),
        metadata=bearer(dee.token),
    )
    await asyncio.sleep(0.2)
    await call_group(itinerary, queue_booking(dee, "rocket-coaster", None))
    nudge = (await next_nudge(feed.__aiter__())).nudge
    feed.cancel()
    assert nudge.guest_id == dee.guest_id
    listed = await stub.ListNudges(
        pb.ListNudgesRequest(guest_id=dee.guest_id), metadata=bearer(eli.token)
    )
    assert [n.nudge_id for n in listed.nudges] == [nudge.nudge_id]
    await expect_error(
        stub.AcknowledgeNudge(
            pb.AcknowledgeNudgeRequest(nudge_id=nudge.nudge_id, ack=pb.NUDGE_ACK_KIND_DISMISSED),
            metadata=bearer(eli.token),
        ),
        DENIED,
    )
    mine = await stub.ListNudges(
        pb.ListNudgesRequest(guest_id=eli.guest_id), metadata=bearer(eli.token)
    )
    assert not mine.nudges
    got = await stub.ListNudges(
        pb.ListNudgesRequest(guest_id=dee.guest_id), metadata=bearer(dee.token)
    )
    assert got.nudges[0].status == pb.NUDGE_STATUS_SENT
    # A guest's own feed never carries another guest's nudge, whatever the cursor.
    other = stub.SubscribeNudges(pb.SubscribeNudgesRequest(), metadata=bearer(stranger.token))
    await call_group(
        itinerary, queue_booking(stranger, "plunge-tower", None, booking_id=str(uuid.uuid4()))
    )
    theirs = (await next_nudge(other.__aiter__())).nudge
    other.cancel()
    assert theirs.guest_id == stranger.guest_id
    assert theirs.action.open_route.destination_poi_id == "plunge-tower"

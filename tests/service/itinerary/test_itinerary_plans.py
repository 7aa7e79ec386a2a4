"""The plan RPCs over a real socket: one plan per party per day, edits guarded by
version, bookings, who may see what, and bad input that writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import grpc
import pytest

from tests.service.conftest import GATE
from tests.service.itinerary.conftest import Itinerary
from tests.support.stubs import bearer, expect_error
from venue.common.v1 import common_pb2
from venue.itinerary.v1 import itinerary_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED


async def test_a_party_gets_one_plan(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    plan = await itinerary.create_plan(ann, "rocket-coaster", "royal-carousel")
    assert plan.party_id == ann.party_id and plan.version == 1
    assert [s.poi_id for s in plan.stops] == ["rocket-coaster", "royal-carousel"]
    # Routing is down: the plan is kept in wish order, flagged not optimized yet.
    assert not plan.HasField("planned_at")
    got = await itinerary.stub.GetPlan(
        pb.GetPlanRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    assert got.plan.plan_id == plan.plan_id
    await expect_error(itinerary.create_plan(ann, "rocket-coaster"), grpc.StatusCode.ALREADY_EXISTS)


def wish(poi: str, **extra: object) -> pb.WishItem:
    return pb.WishItem(poi_id=poi, priority=pb.WISH_PRIORITY_MUST_DO, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"party_id": ""}, "party_id"),
        ({"date": common_pb2.VenueDate(year=2020, month=1, day=1)}, "date"),
        ({"date": common_pb2.VenueDate(year=2026, month=2, day=30)}, "date"),
        ({"wish_list": [wish("no-such-ride")]}, "wish_list[0].poi_id"),
        ({"wish_list": [pb.WishItem(poi_id="rocket-coaster")]}, "wish_list[0].priority"),
        (
            {"wish_list": [wish("rocket-coaster", wish_id="0b0e6f5c-2222-4f11-8d0e-7e1d2c3b4a59")]},
            "wish_list[0].wish_id",
        ),
        ({"wish_list": [wish("rocket-coaster", guest_ids=["nope"])]}, "wish_list[0].guest_ids[0]"),
        ({"wish_list": [wish("main-gate")]}, "wish_list[0].poi_id"),
        ({"settings": pb.PlanSettings(walking_speed_mps=9)}, "settings.walking_speed_mps"),
        (
            {"settings": pb.PlanSettings(start_place=common_pb2.Place(zone_id="atlantis"))},
            "settings.start_place.zone_id",
        ),
        ({"idempotency_key": "has space"}, "idempotency_key"),
    ],
)
async def test_create_plan_bad_input_writes_nothing(
    itinerary: Itinerary, change: dict[str, object], field: str
) -> None:
    guest = await itinerary.family()
    request = {"party_id": guest.party_id, "wish_list": [wish("rocket-coaster")], **change}
    before = await itinerary.count("plans")
    await expect_error(
        itinerary.stub.CreatePlan(pb.CreatePlanRequest(**request), metadata=bearer(guest.token)),  # type: ignore[arg-type]
        INVALID,
        field,
    )
    assert await itinerary.count("plans") == before


async def test_a_guest_plans_only_for_their_own_party(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    bob = await itinerary.family()
    await itinerary.create_plan(ann, "rocket-coaster")
    await expect_error(
        itinerary.stub.CreatePlan(
            pb.CreatePlanRequest(party_id=ann.party_id, wish_list=[wish("rocket-coaster")]),
            metadata=bearer(bob.token),
        ),
        DENIED,
    )
    await expect_error(
        itinerary.stub.GetPlan(
            pb.GetPlanRequest(party_id=ann.party_id), metadata=bearer(bob.token)
        ),
        DENIED,
    )
    await expect_error(
        itinerary.stub.GetPlan(
            pb.GetPlanRequest(party_id=bob.party_id), metadata=bearer(bob.token)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    # Ops staff may read a party's plan (guest help), not make one.
    got = await itinerary.stub.GetPlan(
        pb.GetPlanRequest(party_id=ann.party_id), metadata=bearer(itinerary.ops_token)
    )
    assert got.plan.party_id == ann.party_id
    await expect_error(
        itinerary.stub.CreatePlan(
            pb.CreatePlanRequest(party_id=bob.party_id), metadata=bearer(itinerary.ops_token)
        ),
        DENIED,
    )
    _, gate = await itinerary.identity.device(GATE)
    await expect_error(
        itinerary.stub.GetPlan(pb.GetPlanRequest(party_id=ann.party_id), metadata=bearer(gate)),
        DENIED,
    )


async def test_a_retried_create_returns_the_first_plan(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    request = pb.CreatePlanRequest(
        party_id=ann.party_id, wish_list=[wish("rocket-coaster")], idempotency_key="create-1"
    )
    first, second = await asyncio.gather(
        itinerary.stub.CreatePlan(request, metadata=bearer(ann.token)),
        itinerary.stub.CreatePlan(request, metadata=bearer(ann.token)),
        return_exceptions=True,
    )
    plans = [r for r in (first, second) if isinstance(r, pb.CreatePlanResponse)]
    assert plans and all(p.plan.plan_id == plans[0].plan.plan_id for p in plans)
    again = await itinerary.stub.CreatePlan(request, metadata=bearer(ann.token))
    assert again.plan.plan_id == plans[0].plan.plan_id


async def test_family_edits_do_not_overwrite_each_other(itinerary: Itinerary) -> None:
    mum = await itinerary.family()
    dad = await itinerary.add_adult(mum)
    plan = await itinerary.create_plan(mum, "rocket-coaster", "royal-carousel")
    kept = plan.wish_list[0]

    def edit(token: str, poi: str) -> Awaitable[pb.UpdateWishListResponse]:
        return itinerary.stub.UpdateWishList(
            pb.UpdateWishListRequest(
                plan_id=plan.plan_id,
                wish_list=[kept, wish(poi)],
                expected_version=plan.version,
            ),
            metadata=bearer(token),
        )

    results = await asyncio.gather(
        edit(mum.token, "plunge-tower"), edit(dad.token, "star-voyager"), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, pb.UpdateWishListResponse)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].code() == grpc.StatusCode.ABORTED
    new = won[0].plan
    assert new.version == plan.version + 1
    assert new.wish_list[0].wish_id == kept.wish_id  # the kept wish keeps its id
    assert {w.poi_id for w in new.wish_list} in (
        {"rocket-coaster", "plunge-tower"},
        {"rocket-coaster", "star-voyager"},
    )
    # With no expected version the edit applies to whatever is there.
    last = await itinerary.stub.UpdateWishList(
        pb.UpdateWishListRequest(plan_id=plan.plan_id, wish_list=[wish("saucer-swirl")]),
        metadata=bearer(dad.token),
    )
    assert [w.poi_id for w in last.plan.wish_list] == ["saucer-swirl"]
    assert [s.poi_id for s in last.plan.stops] == ["saucer-swirl"]


async def test_update_wish_list_bad_input(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    bob = await itinerary.family()
    plan = await itinerary.create_plan(ann, "rocket-coaster")
    update = itinerary.stub.UpdateWishList
    await expect_error(
        update(pb.UpdateWishListRequest(plan_id="x"), metadata=bearer(ann.token)),
        INVALID,
        "plan_id",
    )
    await expect_error(
        update(
            pb.UpdateWishListRequest(
                plan_id=plan.plan_id,
                wish_list=[wish("rocket-coaster", wish_id="0b0e6f5c-2222-4f11-8d0e-7e1d2c3b4a59")],
            ),
            metadata=bearer(ann.token),
        ),
        INVALID,
        "wish_list[0].wish_id",
    )
    await expect_error(
        update(pb.UpdateWishListRequest(plan_id=plan.plan_id), metadata=bearer(bob.token)),
        DENIED,
    )
    got = await itinerary.stub.GetPlan(
        pb.GetPlanRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    assert got.plan.version == plan.version


async def test_bookings_join_and_leave_the_plan(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    plan = await itinerary.create_plan(ann, "rocket-coaster")
    now = itinerary.clock_now
    window = common_pb2.TimeRange()
    window.start.FromDatetime(now + timedelta(hours=2))
    window.end.FromDatetime(now + timedelta(hours=2, minutes=15))
    added = await itinerary.stub.AddBooking(
        pb.AddBookingRequest(
            plan_id=plan.plan_id,
            booking=pb.PlanBooking(
                kind=pb.PLAN_BOOKING_KIND_MEAL_RESERVATION, poi_id="starport-cafe", window=window
            ),
            idempotency_key="lunch",
        ),
        metadata=bearer(ann.token),
    )
    booking = added.booking
    assert booking.booking_id and booking.poi_id == "starport-cafe"
    assert [b.booking_id for b in added.plan.bookings] == [booking.booking_id]
    assert any(s.booking_id == booking.booking_id for s in added.plan.stops)
    again = await itinerary.stub.AddBooking(
        pb.AddBookingRequest(
            plan_id=plan.plan_id,
            booking=pb.PlanBooking(
                kind=pb.PLAN_BOOKING_KIND_MEAL_RESERVATION, poi_id="starport-cafe", window=window
            ),
            idempotency_key="lunch",
        ),
        metadata=bearer(ann.token),
    )
    assert again.booking.booking_id == booking.booking_id
    for bad, field in [
        (
            pb.PlanBooking(
                kind=pb.PLAN_BOOKING_KIND_RETURN_TIME, poi_id="rocket-coaster", window=window
            ),
            "booking.kind",
        ),
        (
            pb.PlanBooking(kind=pb.PLAN_BOOKING_KIND_SHOW, poi_id="starport-cafe"),
            "booking.window.start",
        ),
        (
            pb.PlanBooking(kind=pb.PLAN_BOOKING_KIND_SHOW, poi_id="??", window=window),
            "booking.poi_id",
        ),
    ]:
        await expect_error(
            itinerary.stub.AddBooking(
                pb.AddBookingRequest(plan_id=plan.plan_id, booking=bad), metadata=bearer(ann.token)
            ),
            INVALID,
            field,
        )
    for _ in range(2):  # idempotent by nature
        removed = await itinerary.stub.RemoveBooking(
            pb.RemoveBookingRequest(plan_id=plan.plan_id, booking_id=booking.booking_id),
            metadata=bearer(ann.token),
        )
        assert not removed.plan.bookings
        assert not any(s.booking_id for s in removed.plan.stops)


async def test_settings_and_replan(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    plan = await itinerary.create_plan(ann, "rocket-coaster")
    settings = pb.PlanSettings(walking_speed_mps=0.9, accessible=True)
    updated = await itinerary.stub.UpdatePlanSettings(
        pb.UpdatePlanSettingsRequest(plan_id=plan.plan_id, settings=settings),
        metadata=bearer(ann.token),
    )
    assert updated.plan.settings.accessible and updated.plan.settings.walking_speed_mps == 0.9
    assert updated.plan.last_replan_reason == pb.REPLAN_REASON_SETTINGS_CHANGED
    await expect_error(
        itinerary.stub.UpdatePlanSettings(
            pb.UpdatePlanSettingsRequest(
                plan_id=plan.plan_id, settings=settings, expected_version=plan.version
            ),
            metadata=bearer(ann.token),
        ),
        grpc.StatusCode.ABORTED,
    )
    here = common_pb2.Place(zone_id="land.toybox-pier")
    replanned = await itinerary.stub.Replan(
        pb.ReplanRequest(plan_id=plan.plan_id, current_place=here), metadata=bearer(ann.token)
    )
    assert replanned.plan.progress.last_known_place.zone_id == "land.toybox-pier"
    assert replanned.plan.last_replan_reason == pb.REPLAN_REASON_GUEST_REQUESTED
    await expect_error(
        itinerary.stub.Replan(
            pb.ReplanRequest(plan_id=plan.plan_id, current_place=common_pb2.Place(node_id="n.??")),
            metadata=bearer(ann.token),
        ),
        INVALID,
        "current_place.node_id",
    )

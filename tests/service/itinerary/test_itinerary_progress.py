"""Progress from the access and location streams (constructed events over real
gRPC, through the real consumers): taps move stops along, a replayed tap
changes nothing, location counts only for consenting guests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from tests.service.conftest import Guest
from tests.service.itinerary.conftest import Itinerary
from tests.support.stubs import bearer
from venue.access.v1 import access_pb2 as apb
from venue.itinerary.v1 import itinerary_pb2 as pb
from venue.location.v1 import location_pb2 as lpb


async def plan_of(itinerary: Itinerary, guest: Guest) -> pb.Plan:
    reply = await itinerary.stub.GetPlan(
        pb.GetPlanRequest(party_id=guest.party_id), metadata=bearer(guest.token)
    )
    return reply.plan


async def until(
    itinerary: Itinerary, guest: Guest, holds: Callable[[pb.Plan], bool], timeout: float = 10
) -> pb.Plan:
    async with asyncio.timeout(timeout):
        while True:
            plan = await plan_of(itinerary, guest)
            if holds(plan):
                return plan
            await asyncio.sleep(0.1)


def tap(
    guest: Guest, kind: int, attraction: str, tap_id: str = ""
) -> apb.WatchAccessEventsResponse:
    return apb.WatchAccessEventsResponse(
        tap_recorded=apb.TapRecorded(
            tap_id=tap_id or str(uuid.uuid4()),
            access_point_id=f"ap.{attraction}",
            access_point_kind=kind,  # type: ignore[arg-type]
            attraction_id=attraction,
            guest_id=guest.guest_id,
            party_id=guest.party_id,
        )
    )


async def push_tap(itinerary: Itinerary, event: apb.WatchAccessEventsResponse) -> None:
    now = itinerary.clock_now
    event.tap_recorded.tapped_at.FromDatetime(now)
    await itinerary.producers.access.push(event, now)


async def test_taps_take_a_stop_from_line_to_ridden(itinerary: Itinerary) -> None:
    ann = await itinerary.family()
    await itinerary.create_plan(ann, "rocket-coaster", "royal-carousel")
    await push_tap(itinerary, tap(ann, apb.ACCESS_POINT_KIND_PARK_ENTRY, ""))
    await push_tap(
        itinerary, tap(ann, apb.ACCESS_POINT_KIND_RIDE_STANDBY_ENTRANCE, "rocket-coaster")
    )
    plan = await until(itinerary, ann, lambda p: p.stops[0].state == pb.STOP_STATE_IN_PROGRESS)
    assert plan.progress.next_stop_id == plan.stops[0].stop_id
    boarding = tap(ann, apb.ACCESS_POINT_KIND_RIDE_BOARDING, "rocket-coaster", "board-1")
    await push_tap(itinerary, boarding)
    plan = await until(itinerary, ann, lambda p: p.stops[0].state == pb.STOP_STATE_DONE)
    ridden = plan.stops[0]
    assert ridden.actual_start_at.seconds and ridden.actual_end_at.seconds > (
        ridden.actual_start_at.seconds
    )
    assert plan.progress.stops_done == 1 and plan.progress.stops_remaining == 1
    assert plan.progress.last_known_place.zone_id
    # Progress is not an edit: the version a family member edits against stays.
    assert plan.version == 1
    # The same tap again (a replayed stream) changes nothing.
    await push_tap(itinerary, boarding)
    await asyncio.sleep(0.5)
    assert (await plan_of(itinerary, ann)).stops == plan.stops


async def test_location_counts_only_for_consenting_guests(itinerary: Itinerary) -> None:
    tracked = await itinerary.family(location=True)
    private = await itinerary.family(location=False)
    for guest in (tracked, private):
        await itinerary.create_plan(guest, "royal-carousel")
        await itinerary.producers.location.push(
            lpb.WatchLocationEventsResponse(
                guest_zone_changed=lpb.GuestZoneChanged(
                    guest_id=guest.guest_id,
                    party_id=guest.party_id,
                    to_zone_id="land.storybook-glen",
                )
            ),
            itinerary.clock_now,
        )
    plan = await until(
        itinerary, tracked, lambda p: p.progress.last_known_place.zone_id == "land.storybook-glen"
    )
    assert plan.progress.last_known_place.zone_id == "land.storybook-glen"
    await asyncio.sleep(0.5)
    assert not (await plan_of(itinerary, private)).progress.HasField("last_known_place")

"""The plan RPCs over a real socket: one plan per party per day, edits guarded by
version, bookings, who may see what, and bad input that writes nothing."""

from __future__ import annotations

import grpc

from tests.service.itinerary.conftest import Itinerary
from tests.support.stubs import bearer, expect_error
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

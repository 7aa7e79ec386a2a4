"""Routing as a real process on the mall, with no code change from the park: its two
floors, a step-free route by lift, the nearest coffee, and a plan over food-court
counters whose lines routing knows from the venue file alone."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from services.platform.clock import VenueClock
from services.platform.config import ROOT
from services.runner.suite import Suite, auto_ports
from services.venue_model import EdgeKind, load_venue
from tests.support.stubs import bearer
from venue.identity.v1 import identity_pb2, identity_pb2_grpc
from venue.routing.v1 import routing_pb2 as pb
from venue.routing.v1 import routing_pb2_grpc

pytestmark = pytest.mark.e2e

MALL = ROOT / "venues" / "millbrook-galleria.yaml"


async def test_routing_serves_the_mall(tmp_path: Path, database_url: str) -> None:
    mall = load_venue(MALL)
    email = f"mo-{uuid.uuid4().hex[:8]}@example.com"
    suite = Suite(
        data_dir=tmp_path / "data",
        services=["identity", "routing"],
        database_url=database_url,
        ports=auto_ports(),
        venue_file=MALL,
        # 11:00 in London, when every counter is open.
        clock=VenueClock(datetime(2026, 7, 4, 10, 0, tzinfo=UTC), time.time()),
    )
    await suite.start()
    try:
        async with grpc.aio.insecure_channel(suite.addresses["identity"]) as channel:
            identity = identity_pb2_grpc.IdentityServiceStub(channel)
            await identity.CreateGuest(
                identity_pb2.CreateGuestRequest(
                    display_name="Mo", email=email, password="correct horse battery"
                )
            )
            token = (
                await identity.IssueToken(
                    identity_pb2.IssueTokenRequest(
                        guest_password=identity_pb2.GuestPassword(
                            email=email, password="correct horse battery"
                        )
                    )
                )
            ).access_token
        metadata = bearer(token)
        async with grpc.aio.insecure_channel(suite.addresses["routing"]) as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            venue = (await stub.GetVenue(pb.GetVenueRequest(), metadata=metadata)).venue
            assert venue.kind == pb.VENUE_KIND_MALL and venue.currency == "GBP"
            assert [f.level for f in venue.floors] == [0, 1]

            lift = next(e for e in mall.edges if e.kind is EdgeKind.ELEVATOR)
            lower, upper = sorted((lift.source, lift.target), key=lambda n: mall.node(n).floor)
            entrance = next(p for p in mall.pois if p.kind.value == "entrance")
            route = (
                await stub.GetRoute(
                    pb.GetRouteRequest(
                        origin=pb.Endpoint(poi_id=entrance.id),
                        destination=pb.Endpoint(node_id=upper),
                        walking=pb.WalkingOptions(accessible=True),
                    ),
                    metadata=metadata,
                )
            ).route
            connectors = {s.connector for s in route.steps}
            assert pb.CONNECTOR_KIND_ELEVATOR in connectors
            assert not connectors & {pb.CONNECTOR_KIND_STAIRS, pb.CONNECTOR_KIND_ESCALATOR}
            assert route.steps[-1].floor == 1 and lower in route.node_ids

            coffee = await stub.FindNearest(
                pb.FindNearestRequest(origin=pb.Endpoint(node_id=upper), tags=["coffee"]),
                metadata=metadata,
            )
            assert [r.point_of_interest.poi_id for r in coffee.results] == [
                p.id for p in mall.pois_with_tag("coffee")
            ]

            counters = [p.id for p in mall.attractions()][:4]
            plan = await stub.PlanItinerary(
                pb.PlanItineraryRequest(
                    start=pb.Endpoint(poi_id=entrance.id),
                    finish=pb.Endpoint(poi_id=entrance.id),
                    items=[
                        pb.PlanItem(
                            item_id=poi_id,
                            poi_id=poi_id,
                            kind=pb.PLAN_ITEM_KIND_ATTRACTION,
                            priority=pb.PLAN_ITEM_PRIORITY_NICE_TO_DO,
                        )
                        for poi_id in counters
                    ],
                ),
                metadata=metadata,
            )
            # No queue service running: waits are estimated from capacity.
            assert {s.wait_source for s in plan.stops} <= {pb.WAIT_SOURCE_ESTIMATE}
            assert len(plan.stops) + len(plan.skipped) == len(counters)
    finally:
        await suite.stop()

"""Routing's set-up: the venue, the graphs with their precomputed shortest paths,
the crowd board and the queue book fed by the location and queue streams.

Routing keeps no tables: everything it knows is the venue file and what it follows
into memory, rebuilt at every start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

import grpc

from services.platform.server import Runtime, ServiceDefinition
from services.routing.crowding import CrowdBoard
from services.routing.follow import follow_location, follow_queue
from services.routing.policy import POLICY
from services.routing.routes import Router
from services.routing.servicer import RoutingServicer
from services.routing.waits import QueueBook
from services.venue_model import load_venue
from venue.location.v1 import location_pb2_grpc
from venue.queue.v1 import queue_pb2_grpc
from venue.routing.v1 import routing_pb2_grpc

log = logging.getLogger("venue.routing")


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    path = runtime.settings.venue_file
    venue = await asyncio.to_thread(load_venue, path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    crowd = CrowdBoard(venue)
    book = QueueBook()
    router = await asyncio.to_thread(Router, venue, crowd)
    log.info(
        "venue loaded",
        extra={"venue": venue.id, "nodes": router.walk.size, "step_free": router.step_free.size},
    )
    location = location_pb2_grpc.LocationServiceStub(runtime.clients.channel("location"))
    queue = queue_pb2_grpc.QueueServiceStub(runtime.clients.channel("queue"))
    runtime.spawn(follow_location(location, crowd).run(), "routing-occupancy")
    runtime.spawn(follow_queue(queue, book).run(), "routing-queue")
    servicer = RoutingServicer(venue, router, crowd, book, runtime.settings.clock, sha256)

    def register(server: grpc.aio.Server) -> None:
        routing_pb2_grpc.add_RoutingServiceServicer_to_server(servicer, server)

    return register


DEFINITION = ServiceDefinition(
    name="routing",
    proto_service="venue.routing.v1.RoutingService",
    policy=POLICY,
    setup=setup,
)

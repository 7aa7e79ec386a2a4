"""Constructed event streams over real gRPC: the queue, location and access
services' Watch RPCs, serving whatever events a test pushes, with cursors, so
the itinerary's real consumers (reconnects, cursors, duplicates) are exercised
until those services are merged. Nothing else of those services is served."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Generic, TypeVar

import grpc

from services.platform.validation import to_timestamp
from venue.access.v1 import access_pb2 as apb
from venue.common.v1 import common_pb2
from venue.location.v1 import location_pb2 as lpb
from venue.queue.v1 import queue_pb2 as qpb

M = TypeVar(
    "M",
    qpb.WatchQueueEventsResponse,
    lpb.WatchLocationEventsResponse,
    apb.WatchAccessEventsResponse,
)


class Script(Generic[M]):
    """One stream's events in order; each gets its index as cursor."""

    def __init__(self) -> None:
        self.events: list[M] = []
        self.watching = 0
        self._changed = asyncio.Condition()

    async def push(self, event: M, at: datetime) -> M:
        event.occurred_at.CopyFrom(to_timestamp(at))
        event.cursor = str(len(self.events) + 1)
        self.events.append(event)
        async with self._changed:
            self._changed.notify_all()
        return event

    async def serve(self, start: common_pb2.StreamCursor) -> AsyncIterator[M]:
        pos = len(self.events) if start.from_now else int(start.cursor or 0)
        self.watching += 1
        try:
            while True:
                while pos < len(self.events):
                    pos += 1
                    yield self.events[pos - 1]
                async with self._changed:
                    await self._changed.wait_for(functools.partial(self._beyond, pos))
        finally:
            self.watching -= 1

    def _beyond(self, pos: int) -> bool:
        return pos < len(self.events)

    async def wait_watched(self, count: int = 1, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.watching < count:
                await asyncio.sleep(0.02)


def _stream(
    script: Script[Any],
    request_type: Any,
    response_type: Any,
    keep: Any = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    async def behavior(request: Any, context: Any) -> AsyncIterator[Any]:
        async for event in script.serve(request.start):
            if keep is None or keep(request, event):
                yield event

    return grpc.unary_stream_rpc_method_handler(
        behavior,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


def _queue_kinds(request: qpb.WatchQueueEventsRequest, event: qpb.WatchQueueEventsResponse) -> bool:
    kinds = {
        qpb.QueueEventKind.Name(k).removeprefix("QUEUE_EVENT_KIND_").lower() for k in request.kinds
    }
    return not kinds or event.WhichOneof("event") in kinds


class Producers:
    """The three streams on one real server."""

    def __init__(self) -> None:
        self.queue: Script[qpb.WatchQueueEventsResponse] = Script()
        self.location: Script[lpb.WatchLocationEventsResponse] = Script()
        self.access: Script[apb.WatchAccessEventsResponse] = Script()
        self.server = grpc.aio.server()
        # Only the Watch methods: anything else is UNIMPLEMENTED.
        handlers = [
            grpc.method_handlers_generic_handler(
                "venue.queue.v1.QueueService",
                {
                    "WatchQueueEvents": _stream(
                        self.queue,
                        qpb.WatchQueueEventsRequest,
                        qpb.WatchQueueEventsResponse,
                        _queue_kinds,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "venue.location.v1.LocationService",
                {
                    "WatchLocationEvents": _stream(
                        self.location,
                        lpb.WatchLocationEventsRequest,
                        lpb.WatchLocationEventsResponse,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "venue.access.v1.AccessService",
                {
                    "WatchAccessEvents": _stream(
                        self.access, apb.WatchAccessEventsRequest, apb.WatchAccessEventsResponse
                    )
                },
            ),
        ]
        self.server.add_generic_rpc_handlers(handlers)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(0.5)

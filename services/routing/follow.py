"""Routing follows two streams into memory: zone occupancy from the location service
(crowd-aware routes) and forecasts, statuses and posted waits from the queue service
(the planner's time-dependent waits, "open now", posted waits of nearby lines).

Both are rebuilt at every start: a snapshot (ListZoneOccupancy; GetForecast,
GetWaitTimes and GetAttractionState) and then the stream from now on, with the
cursor kept in memory so that a dropped stream resumes where it stopped. Every fact
carries its time and an older one never replaces a newer one, so the snapshot and
the stream may overlap in any order, and an event seen twice changes nothing.
If a dependency is down, routing still answers: uncrowded routes and wait estimates
from capacity, until the stream is back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from services.platform.events import MemoryCursor, StreamConsumer
from services.routing.crowding import CrowdBoard
from services.routing.waits import Forecast, PostedWait, QueueBook, Slot, Status, StatusReport
from venue.common.v1 import common_pb2
from venue.location.v1 import location_pb2, location_pb2_grpc
from venue.queue.v1 import queue_pb2, queue_pb2_grpc

log = logging.getLogger("venue.routing.follow")

_STATUS = {
    queue_pb2.ATTRACTION_STATUS_OPEN: Status.OPEN,
    queue_pb2.ATTRACTION_STATUS_DOWN: Status.DOWN,
    queue_pb2.ATTRACTION_STATUS_CLOSED: Status.CLOSED,
}
_PAGE = 500


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _start(cursor: str) -> common_pb2.StreamCursor:
    return (
        common_pb2.StreamCursor(cursor=cursor) if cursor else common_pb2.StreamCursor(from_now=True)
    )


# --- location: zone occupancy ------------------------------------------------------


def apply_occupancy(board: CrowdBoard, event: location_pb2.WatchLocationEventsResponse) -> None:
    if event.WhichOneof("event") != "occupancy_changed":
        return
    change = event.occupancy_changed
    board.update(change.zone_id, change.density, _seconds(event.occurred_at))


def follow_location(
    stub: location_pb2_grpc.LocationServiceAsyncStub, board: CrowdBoard
) -> StreamConsumer[location_pb2.WatchLocationEventsResponse]:
    async def open_stream(cursor: str) -> AsyncIterator[location_pb2.WatchLocationEventsResponse]:
        call = stub.WatchLocationEvents(
            location_pb2.WatchLocationEventsRequest(
                start=_start(cursor), kinds=[location_pb2.LOCATION_EVENT_KIND_OCCUPANCY_CHANGED]
            )
        )
        if not cursor:
            await snapshot_occupancy(stub, board)
        async for event in call:
            yield event

    async def handle(
        event: location_pb2.WatchLocationEventsResponse, _: asyncpg.Connection | None
    ) -> None:
        apply_occupancy(board, event)

    return StreamConsumer(
        "routing-occupancy", open_stream, handle, lambda e: e.cursor, MemoryCursor()
    )


async def snapshot_occupancy(
    stub: location_pb2_grpc.LocationServiceAsyncStub, board: CrowdBoard
) -> None:
    token = ""
    while True:
        reply = await stub.ListZoneOccupancy(
            location_pb2.ListZoneOccupancyRequest(
                page=common_pb2.PageRequest(page_size=_PAGE, page_token=token)
            )
        )
        for row in reply.occupancies:
            board.update(row.zone_id, row.density, _seconds(row.as_of))
        token = reply.next_page_token
        if not token:
            return


# --- queue: forecasts, statuses, posted waits -----------------------------------------


def forecast_of(message: queue_pb2.AttractionForecast) -> Forecast:
    slots = tuple(
        Slot(
            _seconds(s.start),
            s.wait.seconds + s.wait.nanos / 1e9,
            s.expected_status == queue_pb2.ATTRACTION_STATUS_OPEN,
        )
        for s in sorted(message.slots, key=lambda s: (s.start.seconds, s.start.nanos))
    )
    return Forecast(_seconds(message.computed_at), slots)


def status_of(
    status: int, reason: int, since: float, reopen: Timestamp | None
) -> StatusReport | None:
    kind = _STATUS.get(status)  # type: ignore[call-overload]
    if kind is None:
        return None
    reopen_at = _seconds(reopen) if reopen is not None and reopen.seconds else None
    return StatusReport(kind, since, reopen_at, reason == queue_pb2.STATUS_REASON_SCHEDULED_HOURS)


def apply_queue_event(book: QueueBook, event: queue_pb2.WatchQueueEventsResponse) -> None:
    which = event.WhichOneof("event")
    at = _seconds(event.occurred_at)
    if which == "forecast_changed":
        forecast = event.forecast_changed.forecast
        book.apply_forecast(forecast.attraction_id, forecast_of(forecast))
    elif which == "status_changed":
        change = event.status_changed
        report = status_of(
            change.status,
            change.reason,
            at,
            change.expected_reopen_at if change.HasField("expected_reopen_at") else None,
        )
        if report is not None:
            book.apply_status(change.attraction_id, report)
            if report.status is not Status.OPEN:
                book.apply_posted(change.attraction_id, PostedWait(None, at))
    elif which == "wait_changed":
        wait = event.wait_changed.posted_wait
        book.apply_posted(
            event.wait_changed.attraction_id, PostedWait(wait.seconds + wait.nanos / 1e9, at)
        )


async def snapshot_queue(stub: queue_pb2_grpc.QueueServiceAsyncStub, book: QueueBook) -> None:
    forecasts = await stub.GetForecast(queue_pb2.GetForecastRequest())
    for forecast in forecasts.forecasts:
        book.apply_forecast(forecast.attraction_id, forecast_of(forecast))
    waits = await stub.GetWaitTimes(queue_pb2.GetWaitTimesRequest())
    for wait in waits.waits:
        at = _seconds(wait.updated_at)
        if wait.status == queue_pb2.ATTRACTION_STATUS_OPEN:
            seconds = wait.posted_wait.seconds + wait.posted_wait.nanos / 1e9
            book.apply_posted(wait.attraction_id, PostedWait(seconds, at))
            report = status_of(wait.status, wait.status_reason, at, None)
        else:
            book.apply_posted(wait.attraction_id, PostedWait(None, at))
            # The tip board has no reopening time: ask the attraction's twin.
            state = (
                await stub.GetAttractionState(
                    queue_pb2.GetAttractionStateRequest(attraction_id=wait.attraction_id)
                )
            ).state
            report = status_of(
                state.status,
                state.status_reason,
                _seconds(state.status_since),
                state.expected_reopen_at if state.HasField("expected_reopen_at") else None,
            )
        if report is not None:
            book.apply_status(wait.attraction_id, report)


def follow_queue(
    stub: queue_pb2_grpc.QueueServiceAsyncStub,
    book: QueueBook,
    on_change: Callable[[], None] = lambda: None,
) -> StreamConsumer[queue_pb2.WatchQueueEventsResponse]:
    kinds = [
        queue_pb2.QUEUE_EVENT_KIND_WAIT_CHANGED,
        queue_pb2.QUEUE_EVENT_KIND_STATUS_CHANGED,
        queue_pb2.QUEUE_EVENT_KIND_FORECAST_CHANGED,
    ]

    async def open_stream(cursor: str) -> AsyncIterator[queue_pb2.WatchQueueEventsResponse]:
        call = stub.WatchQueueEvents(
            queue_pb2.WatchQueueEventsRequest(start=_start(cursor), kinds=kinds)
        )
        if not cursor:
            await snapshot_queue(stub, book)
            on_change()
        async for event in call:
            yield event

    async def handle(
        event: queue_pb2.WatchQueueEventsResponse, _: asyncpg.Connection | None
    ) -> None:
        apply_queue_event(book, event)
        on_change()

    return StreamConsumer("routing-queue", open_stream, handle, lambda e: e.cursor, MemoryCursor())


def instant(value: datetime) -> float:
    return value.timestamp()

"""Ride status from ops, the forecast, and the wait history: what each does,
who may call it, and its bad input (a status naming the field, nothing
written)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from services.queue.messages import ts
from tests.service.conftest import ADMIN, GATE
from tests.service.queue.conftest import VENUE_START, Queue
from tests.service.queue.test_queue_waits import next_event, service_token
from tests.support.stubs import bearer, expect_error
from venue.common.v1 import common_pb2
from venue.queue.v1 import queue_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

DOWN = pb.ATTRACTION_STATUS_DOWN
OPEN = pb.ATTRACTION_STATUS_OPEN
CLOSED = pb.ATTRACTION_STATUS_CLOSED


def status(
    attraction: str, state: int, reason: int = 0, **extra: Any
) -> pb.SetAttractionStatusRequest:
    return pb.SetAttractionStatusRequest(
        attraction_id=attraction,
        status=state,  # type: ignore[arg-type]
        reason=reason,  # type: ignore[arg-type]
        **extra,
    )


# --- status ---------------------------------------------------------------------------


async def test_a_breakdown_is_announced_and_the_wait_carries_the_repair(queue: Queue) -> None:
    ride = "summit-yeti-express"
    now = queue.now()
    await queue.feed_access(
        [queue.tap_event("standby", ride, str(uuid.uuid4()), now - 30) for _ in range(20)]
    )
    before = queue.app.live.state(ride).posted_wait.seconds
    call = queue.stub.WatchQueueEvents(
        pb.WatchQueueEventsRequest(
            start=common_pb2.StreamCursor(from_now=True),
            kinds=[pb.QUEUE_EVENT_KIND_STATUS_CHANGED],
            attraction_ids=[ride],
        ),
        metadata=bearer(queue.ops),
    )
    reopen = now + 40 * 60
    reply = await queue.stub.SetAttractionStatus(
        status(
            ride,
            DOWN,
            pb.STATUS_REASON_TECHNICAL,
            note="lift chain",
            expected_reopen_at=ts(reopen),
        ),
        metadata=bearer(queue.ops),
    )
    state = reply.state
    assert state.status == DOWN and state.status_reason == pb.STATUS_REASON_TECHNICAL
    assert state.status_note == "lift chain"
    assert state.expected_reopen_at.seconds == int(reopen)
    assert state.posted_wait.seconds >= max(before, 39 * 60)
    assert abs(state.expected_resume_at.seconds - reopen) <= 1
    event = await next_event(call)
    assert event.status_changed.status == DOWN
    assert event.status_changed.previous_status == OPEN
    assert event.status_changed.note == "lift chain"
    board = await queue.stub.GetWaitTimes(
        pb.GetWaitTimesRequest(attraction_ids=[ride]), metadata=bearer(queue.ops)
    )
    assert board.waits[0].status == DOWN
    assert board.waits[0].posted_wait.seconds == state.posted_wait.seconds
    reply = await queue.stub.SetAttractionStatus(status(ride, OPEN), metadata=bearer(queue.ops))
    assert reply.state.status == OPEN
    assert reply.state.posted_wait.seconds < 10 * 60
    assert (await next_event(call)).status_changed.status == OPEN
    call.cancel()
    assert queue.app.live.twin.repairs.count >= 1


async def test_closed_for_the_day_leaves_no_posted_wait(queue: Queue) -> None:
    ride = "orbit-rockets"
    reply = await queue.stub.SetAttractionStatus(
        status(ride, CLOSED, pb.STATUS_REASON_REFURBISHMENT), metadata=bearer(queue.ops)
    )
    assert reply.state.status == CLOSED
    assert not reply.state.HasField("posted_wait")
    board = await queue.stub.GetWaitTimes(
        pb.GetWaitTimesRequest(attraction_ids=[ride]), metadata=bearer(queue.ops)
    )
    assert not board.waits[0].HasField("posted_wait")
    await queue.stub.SetAttractionStatus(status(ride, OPEN), metadata=bearer(queue.ops))


async def test_only_ops_staff_set_a_status(queue: Queue) -> None:
    guest = await queue.identity.guest("Prank")
    _, admin = await queue.identity.staff(ADMIN)
    _, gate = await queue.identity.device(GATE, "ap.gate.in1")
    routing = await service_token(queue.identity, "routing")
    before = await queue.count("queue.status_log")
    for token in (guest.token, queue.desk, admin, gate, routing):
        await expect_error(
            queue.stub.SetAttractionStatus(
                status("sky-carpets", DOWN, pb.STATUS_REASON_TECHNICAL), metadata=bearer(token)
            ),
            DENIED,
        )
    assert await queue.count("queue.status_log") == before
    assert queue.app.live.state("sky-carpets").status == OPEN


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attraction_id": ""}, "attraction_id"),
        ({"status": 0}, "status"),
        ({"status": 9}, "status"),
        ({"reason": 0}, "reason"),
        ({"reason": 42}, "reason"),
        ({"reason": pb.STATUS_REASON_SCHEDULED_HOURS}, "reason"),
        ({"note": "x" * 201}, "note"),
        ({"note": "bell\x07"}, "note"),
        ({"expected_reopen_at": "past"}, "expected_reopen_at"),
        ({"expected_reopen_at": "far"}, "expected_reopen_at"),
        ({"status": OPEN, "expected_reopen_at": "soon"}, "expected_reopen_at"),
    ],
)
async def test_status_bad_input_names_the_field_and_writes_nothing(
    queue: Queue, change: dict[str, Any], field: str
) -> None:
    request: dict[str, Any] = {
        "attraction_id": "sky-carpets",
        "status": DOWN,
        "reason": pb.STATUS_REASON_TECHNICAL,
        **change,
    }
    when = {"past": -600, "far": 2 * 86400, "soon": 600}
    if isinstance(request.get("expected_reopen_at"), str):
        request["expected_reopen_at"] = ts(queue.now() + when[request["expected_reopen_at"]])
    before = await queue.count("queue.status_log")
    await expect_error(
        queue.stub.SetAttractionStatus(
            pb.SetAttractionStatusRequest(**request), metadata=bearer(queue.ops)
        ),
        INVALID,
        field,
    )
    assert await queue.count("queue.status_log") == before


async def test_status_of_an_unknown_attraction(queue: Queue) -> None:
    await expect_error(
        queue.stub.SetAttractionStatus(
            status("no-such-ride", DOWN, pb.STATUS_REASON_TECHNICAL), metadata=bearer(queue.ops)
        ),
        NOT_FOUND,
    )


# --- forecasts --------------------------------------------------------------------------


async def test_forecast_runs_in_quarter_hours_until_closing(queue: Queue) -> None:
    guest = await queue.identity.guest("Planner")
    itinerary = await service_token(queue.identity, "itinerary")
    for token in (guest.token, itinerary, queue.ops):
        reply = await queue.stub.GetForecast(
            pb.GetForecastRequest(attraction_ids=["rocket-coaster"]), metadata=bearer(token)
        )
        assert reply.slot_length.seconds == 900
        (forecast,) = reply.forecasts
        starts = [s.start.seconds for s in forecast.slots]
        assert all(b - a == 900 for a, b in itertools.pairwise(starts))
        # Quarter hours from the one we are in (the clock started at 11:00 and
        # has run on since: a slow machine may be past 11:15) until 21:00.
        opened = VENUE_START.timestamp()
        now = queue.now()
        first = now - (now - opened) % 900
        assert starts[0] == pytest.approx(first, abs=900)
        assert starts[-1] + 900 == opened + 10 * 3600
        assert all(s.expected_status == OPEN for s in forecast.slots)
        assert all(
            s.wait_low.seconds <= s.wait.seconds <= s.wait_high.seconds for s in forecast.slots
        )


async def test_forecast_for_all_with_a_start_and_a_horizon(queue: Queue) -> None:
    now = queue.now()
    horizon = Duration(seconds=3600)
    reply = await queue.stub.GetForecast(
        pb.GetForecastRequest(start=ts(now + 1800), horizon=horizon), metadata=bearer(queue.ops)
    )
    assert len(reply.forecasts) == len(queue.app.live.lines.specs)
    for forecast in reply.forecasts:
        assert 4 <= len(forecast.slots) <= 5
        assert forecast.slots[0].start.seconds <= now + 1800 < forecast.slots[0].start.seconds + 900


async def test_a_breakdown_shows_in_the_forecast(queue: Queue) -> None:
    ride = "temple-of-the-jade-serpent"
    reopen = queue.now() + 50 * 60
    await queue.stub.SetAttractionStatus(
        status(ride, DOWN, pb.STATUS_REASON_TECHNICAL, expected_reopen_at=ts(reopen)),
        metadata=bearer(queue.ops),
    )
    reply = await queue.stub.GetForecast(
        pb.GetForecastRequest(attraction_ids=[ride], horizon=Duration(seconds=3 * 3600)),
        metadata=bearer(queue.ops),
    )
    slots = reply.forecasts[0].slots
    assert slots[0].expected_status == DOWN and slots[0].wait.seconds >= 35 * 60
    assert slots[-1].expected_status == OPEN and slots[-1].wait.seconds < 15 * 60
    await queue.stub.SetAttractionStatus(status(ride, OPEN), metadata=bearer(queue.ops))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetForecastRequest(attraction_ids=["bad id"]), "attraction_ids[0]"),
        (pb.GetForecastRequest(horizon=Duration(seconds=0)), "horizon"),
        (pb.GetForecastRequest(horizon=Duration(seconds=-60)), "horizon"),
        (pb.GetForecastRequest(horizon=Duration(seconds=25 * 3600)), "horizon"),
    ],
)
async def test_forecast_bad_input_names_the_field(
    queue: Queue, request_: pb.GetForecastRequest, field: str
) -> None:
    await expect_error(queue.stub.GetForecast(request_, metadata=bearer(queue.ops)), INVALID, field)


async def test_forecast_refuses_devices(queue: Queue) -> None:
    _, gate = await queue.identity.device(GATE, "ap.gate.in1")
    await expect_error(
        queue.stub.GetForecast(pb.GetForecastRequest(), metadata=bearer(gate)), DENIED
    )


# --- history --------------------------------------------------------------------------------


async def test_history_pages_through_the_minutes_with_measured_waits(queue: Queue) -> None:
    ride = "harmony-canal-boats"
    minute = int(queue.now() // 60) * 60
    guests = [str(uuid.uuid4()) for _ in range(10)]
    # Ten guests joined two and a half minutes ago and boarded since.
    events = [queue.tap_event("standby", ride, g, minute - 150 + i) for i, g in enumerate(guests)]
    events += [
        queue.tap_event("boarding", ride, g, minute - 5 + 0.1 * i) for i, g in enumerate(guests)
    ]
    await queue.feed_access(events)

    # The clock writes a sample each minute; give it a few (the test clock runs at 1x).
    async def samples() -> int:
        return await queue.count("queue.wait_samples", "attraction_id = $1", ride)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await samples() < 1:
        assert loop.time() < deadline
        await asyncio.sleep(0.2)
    # A history of three minutes with one sample each, read one per page.
    for offset in (-180, -120, -60):
        await queue.app.store.insert_samples([queue.app.live.sample(ride, minute + offset)])
    seen: list[pb.WaitSample] = []
    token = ""
    while True:
        reply = await queue.stub.GetWaitHistory(
            pb.GetWaitHistoryRequest(
                attraction_id=ride,
                period=common_pb2.TimeRange(start=ts(minute - 240), end=ts(minute)),
                page=common_pb2.PageRequest(page_size=1, page_token=token),
            ),
            metadata=bearer(queue.ops),
        )
        seen += reply.samples
        token = reply.next_page_token
        if not token:
            break
    assert [s.at.seconds for s in seen] == [minute - 180, minute - 120, minute - 60]
    measured = [s for s in seen if s.HasField("measured_wait")]
    assert measured and 140 <= measured[0].measured_wait.seconds <= 160


async def test_history_is_for_ops_and_services(queue: Queue) -> None:
    guest = await queue.identity.guest("Snoop")
    for token in (guest.token, queue.desk):
        await expect_error(
            queue.stub.GetWaitHistory(
                pb.GetWaitHistoryRequest(attraction_id="sky-carpets"), metadata=bearer(token)
            ),
            DENIED,
        )
    reply = await queue.stub.GetWaitHistory(
        pb.GetWaitHistoryRequest(attraction_id="sky-carpets"),
        metadata=bearer(await service_token(queue.identity, "routing")),
    )
    assert all(s.at.seconds > 0 for s in reply.samples)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetWaitHistoryRequest(), "attraction_id"),
        (
            pb.GetWaitHistoryRequest(
                attraction_id="sky-carpets",
                period=common_pb2.TimeRange(start=ts(2_000_000_000), end=ts(1_900_000_000)),
            ),
            "period.end",
        ),
        (
            pb.GetWaitHistoryRequest(
                attraction_id="sky-carpets", page=common_pb2.PageRequest(page_size=-1)
            ),
            "page.page_size",
        ),
        (
            pb.GetWaitHistoryRequest(
                attraction_id="sky-carpets", page=common_pb2.PageRequest(page_token="nonsense")
            ),
            "page.page_token",
        ),
    ],
)
async def test_history_bad_input_names_the_field(
    queue: Queue, request_: pb.GetWaitHistoryRequest, field: str
) -> None:
    await expect_error(
        queue.stub.GetWaitHistory(request_, metadata=bearer(queue.ops)), INVALID, field
    )


async def test_a_page_token_of_another_attraction_is_refused(queue: Queue) -> None:
    now = queue.now()
    minute = int(now // 60) * 60
    for offset in (-120, -60):
        await queue.app.store.insert_samples(
            [queue.app.live.sample("rocket-coaster", minute + offset)]
        )
    reply = await queue.stub.GetWaitHistory(
        pb.GetWaitHistoryRequest(
            attraction_id="rocket-coaster",
            period=common_pb2.TimeRange(start=ts(minute - 180), end=ts(minute)),
            page=common_pb2.PageRequest(page_size=1),
        ),
        metadata=bearer(queue.ops),
    )
    assert reply.next_page_token
    await expect_error(
        queue.stub.GetWaitHistory(
            pb.GetWaitHistoryRequest(
                attraction_id="sky-carpets",
                page=common_pb2.PageRequest(page_token=reply.next_page_token),
            ),
            metadata=bearer(queue.ops),
        ),
        INVALID,
        "page.page_token",
    )

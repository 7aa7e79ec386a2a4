"""The ops team's ride status calls: an expected reopen time goes out only while
it is still ahead of the venue clock when the call is made, however long the
call waited in its lane (the queue refuses one already gone)."""

from __future__ import annotations

import asyncio
from datetime import date
from types import SimpleNamespace
from typing import Any

from sim.frame import DayFrame
from sim.suite.calls import Tasks
from sim.suite.devices import REOPEN_NOTICE_S, SuiteDevices
from sim.suite.stats import CallStats
from venue.queue.v1 import queue_pb2 as qpb

FRAME = DayFrame.of(date(2026, 7, 4), "America/New_York")


class Recorder:
    """Stands in for the world's Caller: records what would go on the wire."""

    def __init__(self) -> None:
        self.stats = CallStats()
        self.sent: list[qpb.SetAttractionStatusRequest] = []

    async def __call__(self, name: str, method: Any, request: Any, token: Any) -> object:
        self.sent.append(qpb.SetAttractionStatusRequest.FromString(request.SerializeToString()))
        return object()


def devices(
    clock: list[float], tasks: Tasks, recorder: Recorder, ops_call: Recorder | None = None
) -> SuiteDevices:
    stubs: Any = SimpleNamespace(queue=SimpleNamespace(SetAttractionStatus=None))
    d = SuiteDevices(
        venue=None,  # type: ignore[arg-type]
        frame=FRAME,
        stubs=stubs,
        call=recorder,  # type: ignore[arg-type]
        tokens={},
        ops_token="ops",
        readers=None,
        services={"queue"},
        tasks=tasks,
        run_tag="t",
        ops_call=ops_call,  # type: ignore[arg-type]
    )
    d.clock_now = lambda: clock[0]
    return d


async def test_a_reopen_time_gone_by_the_time_the_call_goes_out_is_not_sent() -> None:
    clock = [36_000.0]
    tasks = Tasks()
    recorder = Recorder()
    ops = devices(clock, tasks, recorder)
    back = clock[0] + REOPEN_NOTICE_S + 600
    # Decided with ten minutes to spare; the suite is busy and the call goes out
    # after the reopen time has passed.
    ops.ride_status("a1", "down", clock[0], back)
    clock[0] = back + 30
    await tasks.drain(5)
    assert len(recorder.sent) == 1
    assert not recorder.sent[0].HasField("expected_reopen_at")
    assert recorder.sent[0].status == qpb.ATTRACTION_STATUS_DOWN


async def test_a_reopen_time_still_ahead_is_sent() -> None:
    clock = [36_000.0]
    tasks = Tasks()
    recorder = Recorder()
    ops = devices(clock, tasks, recorder)
    back = clock[0] + REOPEN_NOTICE_S + 600
    ops.ride_status("a1", "down", clock[0], back)
    await tasks.drain(5)
    sent = recorder.sent[0]
    assert sent.HasField("expected_reopen_at")
    assert sent.expected_reopen_at.ToNanoseconds() == round(FRAME.epoch(back) * 1e9)


async def test_status_posts_go_out_on_the_ops_teams_connection_not_the_devices() -> None:
    clock = [36_000.0]
    tasks = Tasks()
    taps, ops_team = Recorder(), Recorder()
    ops = devices(clock, tasks, taps, ops_call=ops_team)
    ops.ride_status("a1", "down", clock[0], None)
    await tasks.drain(5)
    assert (len(taps.sent), len(ops_team.sent)) == (0, 1)


def test_no_status_without_the_queue() -> None:
    async def run() -> list[qpb.SetAttractionStatusRequest]:
        clock = [0.0]
        tasks = Tasks()
        recorder = Recorder()
        ops = devices(clock, tasks, recorder)
        ops.services = set()
        ops.ride_status("a1", "down", 0, 1000)
        await tasks.drain(1)
        return recorder.sent

    assert asyncio.run(run()) == []

"""The world's callers: each kind of caller has its own cap on calls in flight, so
slow app calls can never starve the ticket desk or the gates."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from sim.config import WorldConfig
from sim.day import make_callers
from sim.suite.calls import Caller
from sim.suite.stats import CallStats


class Slow:
    """A method whose calls hang until released, like a slow itinerary call."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def __call__(self, request: Any, **_: Any) -> str:
        self.started += 1
        await self.release.wait()
        return "slow"


async def fast(request: Any, **_: Any) -> str:
    return "fast"


def test_each_kind_of_caller_has_its_own_cap() -> None:
    config = WorldConfig(desk_in_flight=3, devices_in_flight=4, apps_in_flight=2, ops_in_flight=1)

    async def go() -> None:
        callers = make_callers(CallStats(), config)
        assert {k: c.limit for k, c in callers.items()} == {
            "desk": 3,
            "devices": 4,
            "apps": 2,
            "ops": 1,
        }
        assert len({id(c.gate) for c in callers.values()}) == 4

    asyncio.run(go())


def test_slow_app_calls_do_not_hold_up_the_desk_or_the_gates() -> None:
    config = WorldConfig(desk_in_flight=2, devices_in_flight=2, apps_in_flight=2)

    async def go() -> None:
        stats = CallStats()
        callers = make_callers(stats, config)
        apps, desk, devices = callers["apps"], callers["desk"], callers["devices"]
        slow = Slow()
        hanging = [
            asyncio.ensure_future(apps("itinerary.CreatePlan", slow, None)) for _ in range(5)
        ]
        await asyncio.sleep(0.01)
        # The apps' cap is full and three more app calls wait behind it ...
        assert (apps.in_flight, apps.waiting, slow.started) == (2, 3, 2)
        # ... while the desk and the gates are answered at once.
        got = await asyncio.wait_for(
            asyncio.gather(
                *(desk("identity.CreateGuest", fast, None) for _ in range(10)),
                *(devices("access.Tap", fast, None) for _ in range(10)),
            ),
            timeout=2.0,
        )
        assert got == ["fast"] * 20
        assert desk.peak_waiting <= 8 and devices.peak_waiting <= 8
        assert (desk.in_flight, devices.in_flight) == (0, 0)
        slow.release.set()
        assert await asyncio.gather(*hanging) == ["slow"] * 5
        assert (apps.in_flight, apps.waiting, apps.peak_waiting) == (0, 0, 3)
        assert stats.methods["itinerary.CreatePlan"].ok == 5
        assert stats.methods["access.Tap"].ok == 10

    asyncio.run(go())


class Failing:
    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code

    async def __call__(self, request: Any, **_: Any) -> str:
        raise grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), "no")


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.FAILED_PRECONDITION])
def test_a_failed_call_frees_its_place_and_is_counted_by_status(code: grpc.StatusCode) -> None:
    async def go() -> None:
        stats = CallStats()
        caller = Caller(stats, 1, kind="apps")
        assert await caller("queue.BookReturnTime", Failing(code), None) is None
        assert await caller("queue.BookReturnTime", fast, None) == "fast"
        assert (caller.in_flight, caller.waiting) == (0, 0)
        assert stats.methods["queue.BookReturnTime"].failures == {code.name: 1}

    asyncio.run(go())

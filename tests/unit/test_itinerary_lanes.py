"""Lanes: parties side by side, each party in order, and a watermark that never
passes an event still in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from services.itinerary.consumers import Consumers, ThrottledCursor
from services.itinerary.lanes import Lanes, WatermarkCursor
from services.platform.events import MemoryCursor


async def test_one_party_in_order_others_alongside_and_the_watermark_waits() -> None:
    lanes = Lanes("test", width=4, retry_s=0.0)
    gates = {name: asyncio.Event() for name in ("a1", "a2", "b1")}
    done: list[str] = []

    def work(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await gates[name].wait()
            done.append(name)

        return run

    await lanes.submit("A", "1", work("a1"))
    await lanes.submit("A", "2", work("a2"))
    await lanes.submit("B", "3", work("b1"))
    cursor = WatermarkCursor(lanes, MemoryCursor())
    # B does not wait for A; A's second event waits for its first.
    gates["b1"].set()
    gates["a2"].set()
    await asyncio.sleep(0.05)
    assert done == ["b1"]
    # Event 3 is done but 1 and 2 are not: nothing may be saved past them.
    await cursor.save("3")
    assert lanes.watermark == "" and await cursor.load() == ""
    gates["a1"].set()
    await lanes.drain()
    assert done == ["b1", "a1", "a2"]
    assert lanes.watermark == "3"
    await cursor.save("3")
    assert await cursor.load() == "3"


async def test_a_failing_event_is_retried_then_passed_over() -> None:
    lanes = Lanes("test", width=2, retry_s=0.0)
    tries = 0

    async def flaky() -> None:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise RuntimeError("database hiccup")

    async def broken() -> None:
        raise RuntimeError("never works")

    await lanes.submit("A", "1", flaky)
    await lanes.submit("A", "2", broken)
    await lanes.drain()
    assert tries == 3 and lanes.failed == 1 and lanes.watermark == "2"


async def test_an_event_is_retried_while_the_database_is_down_not_passed_over() -> None:
    """A database restart fails every event for seconds: passing them over would
    lose them (the fault suite restarts PostgreSQL mid-day)."""
    lanes = Lanes("test", width=2, retry_s=0.0)
    tries = 0

    async def during_a_restart() -> None:
        nonlocal tries
        tries += 1
        if tries < 10:
            raise asyncpg.CannotConnectNowError("the database system is starting up")

    await lanes.submit("A", "1", during_a_restart)
    await lanes.drain()
    assert tries == 10 and lanes.failed == 0 and lanes.watermark == "1"


async def test_width_holds_the_stream_back() -> None:
    lanes = Lanes("test", width=2, retry_s=0.0)
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    await lanes.submit("A", "1", slow)
    await lanes.submit("B", "2", slow)
    third = asyncio.create_task(lanes.submit("C", "3", slow))
    await asyncio.sleep(0.05)
    assert not third.done()
    release.set()
    await third
    await lanes.drain()
    assert lanes.watermark == "3"


async def test_the_stored_cursor_catches_up_when_the_stream_goes_quiet() -> None:
    """The watermark reached after the last event's save, and the throttled
    cursor's pending write, are stored within a second (the fault suite found
    them behind the stream for good once it went quiet)."""
    store = MemoryCursor()
    throttled = ThrottledCursor(store, interval=3600.0)  # type: ignore[arg-type]
    await throttled.save("0")  # written: the next saves wait for the interval
    lanes = Lanes("test", width=2, retry_s=0.0)
    watermark = WatermarkCursor(lanes, throttled)
    consumers = Consumers.__new__(Consumers)  # only its cursors, none of its services
    consumers.cursors, consumers.watermarks = [throttled], [watermark]
    go = asyncio.Event()

    async def slow() -> None:
        await go.wait()

    for cursor, party in (("1", "A"), ("2", "B")):
        await lanes.submit(party, cursor, slow)
        await watermark.save(cursor)  # as the consumer does on submit
    go.set()
    await lanes.drain()
    assert await store.load() == "0"
    keeper = asyncio.create_task(consumers.keep_cursors(interval=0.01))
    try:
        for _ in range(200):
            if await store.load() == "2":
                break
            await asyncio.sleep(0.01)
    finally:
        keeper.cancel()
    assert await store.load() == "2"

"""The event stream against the real PostgreSQL: ordered, gapless under
concurrent transactions, replayable from any cursor, and followed live."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.platform import events, migrations
from services.platform.events import ORIGIN, EventHub, StoredEvent

AT = datetime(2026, 7, 4, 9, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    await migrations.migrate(conn, schema, {"platform": migrations.PLATFORM_MIGRATIONS})
    await conn.close()
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=6, server_settings={"search_path": schema}
    )
    yield pool
    await pool.close()


@pytest.fixture
async def hub(pool: asyncpg.Pool, database_url: str, schema: str) -> AsyncIterator[EventHub]:
    hub = EventHub(pool, database_url, schema, buffer_size=20, poll_interval=0.05)
    await hub.start()
    yield hub
    await hub.stop()


async def emit(pool: asyncpg.Pool, schema: str, *names: str, key: str = "") -> None:
    async with pool.acquire() as conn, conn.transaction():
        for name in names:
            await events.append(conn, schema, "thing", name.encode(), AT, key)


async def take(stream: AsyncIterator[StoredEvent], count: int, timeout: float = 5.0) -> list[str]:
    got: list[str] = []
    async with asyncio.timeout(timeout):
        async for event in stream:
            got.append(event.payload.decode())
            if len(got) == count:
                break
    return got


async def test_replay_then_follow_live(pool: asyncpg.Pool, hub: EventHub, schema: str) -> None:
    await emit(pool, schema, "a", "b")
    stream = hub.subscribe(ORIGIN)
    assert await take(stream, 2) == ["a", "b"]
    await emit(pool, schema, "c")
    assert await take(stream, 1) == ["c"]


async def test_from_now_skips_history(pool: asyncpg.Pool, hub: EventHub, schema: str) -> None:
    await emit(pool, schema, "old")
    await asyncio.sleep(0.2)
    stream = hub.subscribe(None)
    await emit(pool, schema, "new")
    assert await take(stream, 1) == ["new"]


async def test_late_commit_is_not_skipped(pool: asyncpg.Pool, hub: EventHub, schema: str) -> None:
    """A transaction that started first but commits last is still delivered,
    before anything that committed after it started."""
    stream = hub.subscribe(None)
    received: list[str] = []

    async def collect() -> None:
        async for event in stream:
            received.append(event.payload.decode())

    collector = asyncio.create_task(collect())
    slow = await pool.acquire()
    tx = slow.transaction()
    await tx.start()
    await events.append(slow, schema, "thing", b"slow", AT)
    await emit(pool, schema, "fast")
    await asyncio.sleep(0.4)
    assert received == [], "an event behind a running transaction was delivered early"
    await tx.commit()
    await pool.release(slow)
    async with asyncio.timeout(5):
        while len(received) < 2:
            await asyncio.sleep(0.02)
    collector.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await collector
    assert received == ["slow", "fast"]


async def _at_txids(pool: asyncpg.Pool, *txids: int) -> None:
    """Events of long-finished transactions with the given ids, each named by
    its id. Ids below 100 lie under every cluster's horizon (initdb alone uses
    hundreds), so they are readable at once."""
    await pool.executemany(
        "INSERT INTO events (txid, kind, payload, occurred_at) VALUES ($1::text::xid8, $2, $3, $4)",
        [(str(t), "thing", str(t).encode(), AT) for t in txids],
    )


async def test_events_are_read_in_transaction_order_across_a_power_of_ten(
    pool: asyncpg.Pool, hub: EventHub, schema: str
) -> None:
    """Transaction 9 comes before transaction 10, though "10" sorts before "9" as
    text: a reader ordering by the text would hand out 10, then skip 9 as behind
    its cursor. The suite's embedded cluster crosses xid 1000 mid-test."""
    await _at_txids(pool, 10, 9, 99, 100)
    page = await events.read_after(pool, ORIGIN, 10)
    assert [e.payload.decode() for e in page] == ["9", "10", "99", "100"]
    assert [e.payload.decode() for e in await events.read_after(pool, page[0].cursor, 10)] == [
        "10",
        "99",
        "100",
    ]
    assert (await events.latest_cursor(pool)).txid == 100
    # The hub hands every one out, in order, to a subscriber from the start.
    hub.poke()
    assert await take(hub.subscribe(ORIGIN), 4) == ["9", "10", "99", "100"]


async def test_a_hub_starting_on_a_stream_across_a_power_of_ten_starts_at_its_end(
    pool: asyncpg.Pool, database_url: str, schema: str
) -> None:
    await _at_txids(pool, 9, 10)
    late = EventHub(pool, database_url, schema, poll_interval=0.05)
    await late.start()
    try:
        assert late.tail.txid == 10
        # Nothing old is handed out again as new.
        stream = late.subscribe(None)
        await emit(pool, schema, "new")
        assert await take(stream, 1) == ["new"]
    finally:
        await late.stop()


async def test_rolled_back_events_never_appear(
    pool: asyncpg.Pool, hub: EventHub, schema: str
) -> None:
    stream = hub.subscribe(None)
    with contextlib.suppress(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await events.append(conn, schema, "thing", b"ghost", AT)
            raise RuntimeError("abort")
    await emit(pool, schema, "real")
    assert await take(stream, 1) == ["real"]


async def test_old_cursor_replays_from_table_past_the_buffer(
    pool: asyncpg.Pool, hub: EventHub, schema: str
) -> None:
    names = [f"e{i}" for i in range(100)]
    for chunk in range(0, 100, 10):
        await emit(pool, schema, *names[chunk : chunk + 10])
    await asyncio.sleep(0.3)
    assert await take(hub.subscribe(ORIGIN), 100) == names
    # From a cursor in the middle: the rest, exactly once.
    middle = (await events.read_after(pool, ORIGIN, 37))[-1].cursor
    assert await take(hub.subscribe(middle), 63) == names[37:]


async def test_filters_by_kind_and_key(pool: asyncpg.Pool, hub: EventHub, schema: str) -> None:
    await emit(pool, schema, "for-ann", key="ann")
    await emit(pool, schema, "for-bob", key="bob")
    async with pool.acquire() as conn, conn.transaction():
        await events.append(conn, schema, "other", b"other-ann", AT, "ann")
    assert await take(hub.subscribe(ORIGIN, key="ann"), 2) == ["for-ann", "other-ann"]
    assert await take(hub.subscribe(ORIGIN, kinds={"other"}), 1) == ["other-ann"]


async def test_hub_recovers_after_losing_its_listener(
    pool: asyncpg.Pool, hub: EventHub, schema: str, database_url: str
) -> None:
    stream = hub.subscribe(None)
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
    )
    await conn.close()
    await emit(pool, schema, "after-drop")
    assert await take(stream, 1) == ["after-drop"]


async def test_consumer_stores_its_cursor_with_its_effect(
    pool: asyncpg.Pool, hub: EventHub, schema: str
) -> None:
    """Killed mid-stream and restarted, a consumer loses nothing; its handler
    runs in the transaction that stores the cursor, so nothing applies twice."""
    await pool.execute("CREATE TABLE applied (name text PRIMARY KEY)")
    names = [f"n{i}" for i in range(40)]

    def open_stream(cursor: str) -> AsyncIterator[StoredEvent]:
        return hub.subscribe(events.Cursor.decode(cursor))

    async def handle(event: StoredEvent, conn: asyncpg.Connection | None) -> None:
        assert conn is not None
        await conn.execute("INSERT INTO applied VALUES ($1)", event.payload.decode())
        await asyncio.sleep(0.005)

    def consumer() -> events.StreamConsumer[StoredEvent]:
        return events.StreamConsumer(
            "test",
            open_stream,
            handle,
            lambda e: e.cursor.encode(),
            events.TableCursor(pool, "test"),
            pool,
        )

    first = consumer()
    first.start()
    for chunk in range(0, 40, 5):
        await emit(pool, schema, *names[chunk : chunk + 5])
        if chunk == 15:
            await asyncio.sleep(0.05)
            await first.stop()  # killed mid-stream
            second = consumer()
            second.start()
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT count(*) FROM applied") < 40:
            await asyncio.sleep(0.05)
    await second.stop()
    rows = await pool.fetch("SELECT name FROM applied")
    assert sorted(r["name"] for r in rows) == sorted(names)


async def test_a_failing_listener_neither_stops_nor_corrupts_the_hub(
    pool: asyncpg.Pool, hub: EventHub, schema: str
) -> None:
    """A listener that raised used to escape the read loop after its event was
    buffered but before the tail moved: the hub re-read and re-buffered the same
    page forever, the buffer lost its order, and a subscriber could spin on it."""
    seen: list[str] = []

    def flaky(event: StoredEvent) -> None:
        seen.append(event.payload.decode())
        if event.payload == b"boom":
            raise ValueError("a listener's bug")

    hub.on_event(flaky)
    stream = hub.subscribe(None)
    await emit(pool, schema, "a", "boom", "c")
    assert await take(stream, 3) == ["a", "boom", "c"]
    await emit(pool, schema, "d")
    assert await take(stream, 1) == ["d"]
    assert seen == ["a", "boom", "c", "d"]
    assert hub._cursors == sorted(set(hub._cursors))


async def test_a_filtered_subscriber_far_behind_lets_the_loop_run(
    pool: asyncpg.Pool, database_url: str, schema: str
) -> None:
    """Scanning a long backlog its filter skips, a subscriber gives the event loop
    turns: one Watch must never stall a service's other calls (health checks,
    taps) while it catches up."""
    big = EventHub(pool, database_url, schema, buffer_size=50_000, poll_interval=0.05)
    await big.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            rows = [("noise", "", b"x", AT)] * (EventHub.SCAN * 8)
            await events.append_many(conn, schema, rows)
            await events.append(conn, schema, "wanted", b"last", AT)
        async with asyncio.timeout(10):
            while len(big._events) < EventHub.SCAN * 8 + 1:
                await asyncio.sleep(0.02)
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        stream = big.subscribe(ORIGIN, kinds={"wanted"})
        first = asyncio.ensure_future(stream.__anext__())
        tick_task = asyncio.create_task(ticker())
        event = await first
        at_last = ticks
        stop.set()
        await tick_task
        assert event.payload == b"last"
        assert at_last >= 4, "the scan held the event loop from start to end"
    finally:
        await big.stop()

"""Event streams (DESIGN §4): an outbox table per service, a Watch that replays
from a cursor and then follows live, and consumers that store their cursor.

Producing: `append()` writes an event in the caller's transaction, so the event
exists exactly when the state change it reports does, and NOTIFY wakes readers
at commit.

Ordering without gaps: events are read in (txid, seq) order and only from
transactions older than the oldest one still running
(`pg_snapshot_xmin(pg_current_snapshot())`). A transaction that started early
and commits late can therefore never slip in behind a reader's cursor. The cost
is that a long transaction anywhere in the cluster delays delivery: keep
transactions short.

Serving: one `EventHub` per process tails the table once and keeps a buffer of
recent events; every Watch call replays history from the database, then serves
from the buffer, so a thousand subscribers cost one query per wake-up, not a
thousand.

Consuming: `StreamConsumer` reads another service's Watch, hands each event to
a handler, and stores the cursor after it; on any failure it reconnects with
backoff from the stored cursor. Handlers must tolerate seeing an event twice.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import asyncpg
import grpc
from opentelemetry import metrics, propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.platform import semconv
from services.platform.clock import VenueClock
from services.platform.errors import InvalidArgument

log = logging.getLogger("venue.events")
_propagator = TraceContextTextMapPropagator()


class Cursor(NamedTuple):
    txid: int
    seq: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"v1:{self.txid}:{self.seq}".encode()).decode()

    @classmethod
    def decode(cls, token: str, field: str = "start.cursor") -> Cursor:
        if not token:
            return ORIGIN
        try:
            version, txid, seq = base64.urlsafe_b64decode(token.encode()).decode().split(":")
            if version != "v1":
                raise ValueError(version)
            cursor = cls(int(txid), int(seq))
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(field, "not a cursor this stream produced") from None
        if cursor.txid < 0 or cursor.seq < 0:
            raise InvalidArgument(field, "not a cursor this stream produced")
        return cursor


ORIGIN = Cursor(0, 0)


def channel_for(schema: str) -> str:
    return f"venue_events_{schema}"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    cursor: Cursor
    kind: str
    key: str
    payload: bytes
    occurred_at: datetime
    traceparent: str | None


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


async def append(
    conn: asyncpg.Connection,
    schema: str,
    kind: str,
    payload: bytes,
    occurred_at: datetime,
    key: str = "",
) -> None:
    """Record one event in the caller's transaction."""
    await conn.execute(
        "INSERT INTO events (kind, key, payload, occurred_at, traceparent) "
        "VALUES ($1, $2, $3, $4, $5)",
        kind,
        key,
        payload,
        occurred_at,
        current_traceparent(),
    )
    await conn.execute("SELECT pg_notify($1, '')", channel_for(schema))


async def append_many(
    conn: asyncpg.Connection,
    schema: str,
    rows: Collection[tuple[str, str, bytes, datetime]],
) -> None:
    """Record many events (kind, key, payload, occurred_at) in one round trip."""
    if not rows:
        return
    traceparent = current_traceparent()
    await conn.executemany(
        "INSERT INTO events (kind, key, payload, occurred_at, traceparent) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(kind, key, payload, at, traceparent) for kind, key, payload, at in rows],
    )
    await conn.execute("SELECT pg_notify($1, '')", channel_for(schema))


# The cursor's txid goes out as text under its own name, so every ORDER BY names
# the table's column (events.txid): a bare `txid` there would sort the text, and
# "1000" sorts before "999" - a reader would skip the older events of a page that
# spans a power of ten of transaction ids.
_SELECT = (
    "SELECT txid::text AS txid, seq, kind, key, payload, occurred_at, traceparent FROM events "
    "WHERE (txid, seq) > ($1::text::xid8, $2::bigint) "
    "AND txid < pg_snapshot_xmin(pg_current_snapshot()) "
)


def _row(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        Cursor(int(row["txid"]), row["seq"]),
        row["kind"],
        row["key"],
        row["payload"],
        row["occurred_at"],
        row["traceparent"],
    )


async def read_after(
    conn: asyncpg.Connection | asyncpg.Pool,
    after: Cursor,
    limit: int,
    kinds: Collection[str] | None = None,
    key: str | None = None,
    upto: Cursor | None = None,
) -> list[StoredEvent]:
    """Committed events after `after` (and not after `upto`), oldest first."""
    sql = _SELECT
    args: list[Any] = [str(after.txid), after.seq]
    if kinds:
        args.append(list(kinds))
        sql += f"AND kind = ANY(${len(args)}::text[]) "
    if key is not None:
        args.append(key)
        sql += f"AND key = ${len(args)} "
    if upto is not None:
        args += [str(upto.txid), upto.seq]
        sql += f"AND (txid, seq) <= (${len(args) - 1}::text::xid8, ${len(args)}::bigint) "
    args.append(limit)
    sql += f"ORDER BY events.txid, events.seq LIMIT ${len(args)}"
    rows = await conn.fetch(sql, *args)
    return [_row(r) for r in rows]


async def latest_cursor(conn: asyncpg.Connection | asyncpg.Pool) -> Cursor:
    row = await conn.fetchrow(
        "SELECT txid::text AS txid, seq FROM events "
        "WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) "
        "ORDER BY events.txid DESC, events.seq DESC LIMIT 1"
    )
    return ORIGIN if row is None else Cursor(int(row["txid"]), row["seq"])


class EventHub:
    """Tails one service's event table and fans events out to Watch calls."""

    PAGE = 1000
    # Events a subscriber scans before it lets the event loop run others.
    SCAN = 500

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        schema: str,
        buffer_size: int = 50_000,
        poll_interval: float = 0.25,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._schema = schema
        self._buffer_size = buffer_size
        self._poll = poll_interval
        self._cursors: list[Cursor] = []
        self._events: list[StoredEvent] = []
        # Every event after `_floor` up to `_tail` is in the buffer.
        self._floor = ORIGIN
        self._tail = ORIGIN
        self._advanced = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._listeners: list[Callable[[StoredEvent], None]] = []

    @property
    def tail(self) -> Cursor:
        return self._tail

    def on_event(self, callback: Callable[[StoredEvent], None]) -> None:
        """Call `callback` for each new event this hub reads (e.g. cache invalidation)."""
        self._listeners.append(callback)

    async def start(self) -> None:
        self._tail = self._floor = await latest_cursor(self._pool)
        self._task = asyncio.create_task(self._run(), name=f"event-hub-{self._schema}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close_listener()

    def poke(self) -> None:
        """Read now (the process itself just committed events)."""
        self._wake.set()

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(channel_for(self._schema), lambda *_: self._wake.set())

    async def _run(self) -> None:
        backoff = 0.1
        retry_soon = 0
        while True:
            try:
                await self._listen()
                timeout = 0.02 if retry_soon else self._poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                woken = self._wake.is_set()
                self._wake.clear()
                # Tailing is housekeeping, not a request: no trace per poll.
                with suppress_instrumentation():
                    got = await self._read_new()
                # A wake-up with nothing visible means a commit is hidden behind an
                # older running transaction: look again shortly.
                retry_soon = 10 if woken and not got else max(0, retry_soon - 1)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event hub lost the database; retrying", exc_info=True)
                await self._close_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _read_new(self) -> int:
        total = 0
        while True:
            rows = await read_after(self._pool, self._tail, self.PAGE)
            if not rows:
                break
            for event in rows:
                if event.cursor <= self._tail:
                    continue  # the buffer stays strictly ordered: subscribe relies on it
                self._cursors.append(event.cursor)
                self._events.append(event)
                self._tail = event.cursor
                self._notify(event)
            total += len(rows)
            if len(rows) < self.PAGE:
                break
        if total:
            self._trim()
            self._advanced.set()
            self._advanced = asyncio.Event()
        return total

    def _notify(self, event: StoredEvent) -> None:
        # A listener's bug must not stop the hub: raised out of the read loop it
        # would re-read (and re-buffer) the same page forever.
        for callback in self._listeners:
            try:
                callback(event)
            except Exception:
                log.exception("event listener failed", extra={"kind": event.kind})

    def _trim(self) -> None:
        excess = len(self._events) - self._buffer_size
        if excess > self._buffer_size // 4:
            self._floor = self._cursors[excess - 1]
            del self._cursors[:excess]
            del self._events[:excess]

    async def subscribe(
        self,
        after: Cursor | None,
        kinds: Collection[str] | None = None,
        key: str | None = None,
    ) -> AsyncIterator[StoredEvent]:
        """Events after `after` (None: only new ones), then live, forever."""
        pos = self._tail if after is None else after
        wanted = frozenset(kinds) if kinds else None
        while True:
            if pos < self._floor:
                # Older than the buffer: replay from the table, up to the buffer.
                floor = self._floor
                rows = await read_after(self._pool, pos, self.PAGE, wanted, key, upto=floor)
                for event in rows:
                    yield event
                pos = rows[-1].cursor if len(rows) == self.PAGE else floor
                continue
            advanced = self._advanced
            index = bisect.bisect_right(self._cursors, pos)
            if index >= len(self._events):
                await advanced.wait()
                continue
            # Walk the buffer in slices so a subscriber far behind neither copies
            # the whole buffer nor, when its filter skips most events, holds the
            # event loop for the whole scan: every slice gives the loop a turn.
            batch = self._events[index : index + self.SCAN]
            for event in batch:
                if (wanted is None or event.kind in wanted) and (key is None or event.key == key):
                    yield event
            pos = batch[-1].cursor
            if len(batch) == self.SCAN:
                await asyncio.sleep(0)


class WatchResponse(Protocol):
    cursor: str

    @property
    def occurred_at(self) -> Any: ...


def start_cursor(start: Any, field: str = "start") -> Cursor | None:
    """A StreamCursor message -> where to start (None: from now)."""
    if start.from_now:
        if start.cursor:
            raise InvalidArgument(field, "give either cursor or from_now, not both")
        return None
    return Cursor.decode(start.cursor, f"{field}.cursor")


R = TypeVar("R", bound=WatchResponse)
E = TypeVar("E")


async def serve_watch(
    hub: EventHub,
    start: Any,
    parse: Callable[[bytes], R],
    kinds: Collection[str] | None = None,
    key: str | None = None,
) -> AsyncIterator[R]:
    """The body of a Watch RPC: stored payloads become responses with cursors."""
    after = start_cursor(start)
    traced: bool | None = None
    async for event in hub.subscribe(after, kinds, key):
        response = parse(event.payload)
        response.cursor = event.cursor.encode()
        response.occurred_at.FromDatetime(event.occurred_at)
        if traced is None:
            traced = hasattr(response, "traceparent")
        if traced and event.traceparent:
            response.traceparent = event.traceparent  # type: ignore[attr-defined]
        yield response


class CursorStore(Protocol):
    async def load(self) -> str: ...

    async def save(self, cursor: str, conn: asyncpg.Connection | None = None) -> None: ...


class MemoryCursor:
    """For consumers that rebuild in-memory state from the start on each run."""

    def __init__(self, cursor: str = "") -> None:
        self.cursor = cursor

    async def load(self) -> str:
        return self.cursor

    async def save(self, cursor: str, conn: asyncpg.Connection | None = None) -> None:
        self.cursor = cursor


class TableCursor:
    """The consumer's cursor in its own schema's stream_cursors table."""

    def __init__(self, pool: asyncpg.Pool, consumer: str) -> None:
        self._pool = pool
        self._consumer = consumer

    async def load(self) -> str:
        value = await self._pool.fetchval(
            "SELECT cursor FROM stream_cursors WHERE consumer = $1", self._consumer
        )
        return str(value or "")

    async def save(self, cursor: str, conn: asyncpg.Connection | None = None) -> None:
        await (conn or self._pool).execute(
            "INSERT INTO stream_cursors (consumer, cursor) VALUES ($1, $2) "
            "ON CONFLICT (consumer) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
            self._consumer,
            cursor,
        )


_tracer = trace.get_tracer("venue.events")
_meter = metrics.get_meter("venue.events")
_handled = semconv.counter(_meter, semconv.EVENTS_HANDLED)
_lag = semconv.histogram(_meter, semconv.EVENTS_LAG)


def _links_to(traceparent: str) -> list[Link]:
    """A link to the span that produced an event, from its W3C traceparent."""
    if not traceparent:
        return []
    context = _propagator.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


class StreamConsumer(Generic[E]):
    """Follows another service's Watch stream for as long as the process runs.

    `open_stream(cursor)` opens the stream from a cursor; `handle(event, conn)`
    applies one event. With a pool, the handler runs in a transaction that also
    stores the cursor, so the effect and the progress commit together.
    """

    def __init__(
        self,
        name: str,
        open_stream: Callable[[str], AsyncIterator[E]],
        handle: Callable[[E, asyncpg.Connection | None], Awaitable[None]],
        cursor_of: Callable[[E], str],
        store: CursorStore,
        pool: asyncpg.Pool | None = None,
        clock: VenueClock | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._attrs = {semconv.CONSUMER: name}
        self._open = open_stream
        self._handle = handle
        self._cursor_of = cursor_of
        self._store = store
        self._pool = pool
        self.handled = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"consumer-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                cursor = await self._store.load()
                async for event in self._open(cursor):
                    await self._apply(event)
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as err:
                log.info(
                    "event stream dropped; reconnecting",
                    extra={"consumer": self.name, "code": err.code().name},
                )
            except Exception:
                log.warning(
                    "event consumer failed; retrying", extra={"consumer": self.name}, exc_info=True
                )
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 5.0)

    async def _apply(self, event: E) -> None:
        cursor = self._cursor_of(event)
        links = _links_to(getattr(event, "traceparent", ""))
        with _tracer.start_as_current_span(
            f"consume {self.name}", kind=SpanKind.CONSUMER, links=links
        ):
            if self._pool is None:
                await self._handle(event, None)
                await self._store.save(cursor)
            else:
                async with self._pool.acquire() as conn, conn.transaction():
                    await self._handle(event, conn)
                    await self._store.save(cursor, conn)
        self.handled += 1
        _handled.add(1, self._attrs)
        occurred = getattr(event, "occurred_at", None)
        if occurred is not None and self._clock is not None and occurred.seconds:
            behind = (self._clock.now() - occurred.ToDatetime(tzinfo=UTC)).total_seconds()
            _lag.record(max(behind, 0.0) / self._clock.speed, self._attrs)

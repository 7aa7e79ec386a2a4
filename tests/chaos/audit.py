"""After the faulty day: what the suite acknowledged against what it holds.

Each check has a count of what it looked at and a list of problems (empty when
it holds):

- nothing acknowledged lost, nothing doubled: every tap, charge, ping batch,
  capture and nudge answer the world was given is in its service's tables once,
  with the id the reply carried, and its event is in the stream once;
- money: every ledger entry sums to zero, all postings sum to zero, every wallet's
  balance is the sum of its postings and never below zero, every approved charge
  has one entry;
- consumers caught up: each consumer's stored cursor is at or past the last event
  of its producer's stream that it asked for;
- replay: the twin's state rebuilt from its event stream equals what it serves
  and what its tables hold (queue's posted waits and statuses, location's zone
  counts, queue's taps against access's tap events).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc

from services.itinerary.consumers import ACTIVE_BOOKINGS
from services.photo.catalog import Catalog, PhotoConfig
from services.platform.events import Cursor
from services.queue.live import TAP_KINDS
from services.queue.venue_lines import venue_lines
from services.runner.suite import Suite
from services.venue_model import Venue
from sim.day import DayResult
from sim.suite.calls import bearer
from tests.chaos.record import Acknowledged
from venue.access.v1 import access_pb2 as apb
from venue.common.v1 import common_pb2
from venue.itinerary.v1 import itinerary_pb2 as ipb
from venue.location.v1 import location_pb2 as lpb
from venue.location.v1 import location_pb2_grpc
from venue.queue.v1 import queue_pb2 as qpb
from venue.queue.v1 import queue_pb2_grpc

# How long the consumers get to catch up after the last device went quiet.
SETTLE_S = 90.0
# Most problems listed per check (the count says how many there were).
SHOWN = 20


@dataclass
class Check:
    name: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    # Promises found stored (or streamed) no times, and more than once.
    lost: int = 0
    doubled: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < SHOWN:
            self.problems.append(text)

    def exactly_once(self, found: int, what: str) -> bool:
        """Counts `what` as lost or doubled unless it was found once; True when
        it was found at all (so the caller can look at what was stored)."""
        if found != 1:
            if found == 0:
                self.lost += 1
            else:
                self.doubled += 1
            self.problem(f"{what} found {found} times")
        return found > 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


@dataclass
class Audit:
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def lost(self) -> int:
        return sum(c.figures.get("lost", 0) for c in self.checks)

    @property
    def doubled(self) -> int:
        return sum(c.figures.get("doubled", 0) for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lost": self.lost,
            "doubled": self.doubled,
            "checked": sum(c.checked for c in self.checks),
            "checks": {
                c.name: {
                    "ok": c.ok,
                    "checked": c.checked,
                    "problems": c.problem_count,
                    "first_problems": c.problems,
                    **c.figures,
                }
                for c in self.checks
            },
        }

    def failures(self) -> list[str]:
        return [f"{c.name}: {p}" for c in self.checks for p in c.problems]


async def _events(
    conn: asyncpg.Connection, schema: str, kinds: Iterable[str]
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            # Stream order: by the xid8 column, not its text (where '9' > '10').
            f"SELECT e.seq, e.kind, e.key, e.payload FROM {schema}.events e "
            "WHERE e.kind = ANY($1::text[]) ORDER BY e.txid, e.seq",
            list(kinds),
        )
    )


def _count(values: Iterable[str]) -> Counter[str]:
    return Counter(values)


# --- nothing lost, nothing doubled ------------------------------------------------


async def check_taps(conn: asyncpg.Connection, acked: Acknowledged, audit: Audit) -> None:
    c = audit.add(Check("taps"))
    keys = [t.key for t in acked.taps]
    rows = await conn.fetch(
        "SELECT idem_key, tap_id::text AS tap_id, decision FROM access.taps "
        "WHERE idem_key = ANY($1::text[])",
        keys,
    )
    stored = _count(r["idem_key"] for r in rows)
    tap_of = {r["idem_key"]: r["tap_id"] for r in rows}
    events = _count(
        apb.WatchAccessEventsResponse.FromString(r["payload"]).tap_recorded.tap_id
        for r in await _events(conn, "access", ["tap_recorded"])
    )
    for tap in acked.taps:
        c.checked += 1
        if not c.exactly_once(stored[tap.key], f"acknowledged tap {tap.key}"):
            continue
        if tap_of[tap.key] != tap.tap_id:
            c.problem(f"tap {tap.key}: reply said {tap.tap_id}, stored {tap_of[tap.key]}")
        if tap.allowed:
            c.exactly_once(events[tap.tap_id], f"tap_recorded event of allowed tap {tap.tap_id}")
    c.figures.update(
        lost=c.lost,
        doubled=c.doubled,
        allowed=sum(t.allowed for t in acked.taps),
        duplicate_keys_in_world=len(keys) - len(set(keys)),
    )


async def check_charges(conn: asyncpg.Connection, acked: Acknowledged, audit: Audit) -> None:
    c = audit.add(Check("charges"))
    rows = await conn.fetch(
        "SELECT idem_key, charge_id::text AS charge_id, result, amount_minor FROM access.charges "
        "WHERE idem_key = ANY($1::text[])",
        [ch.key for ch in acked.charges],
    )
    stored = _count(r["idem_key"] for r in rows)
    row_of = {r["idem_key"]: r for r in rows}
    entries = _count(
        r["charge_id"]
        for r in await conn.fetch(
            "SELECT charge_id::text AS charge_id FROM access.ledger_entries "
            "WHERE charge_id IS NOT NULL AND refund_id IS NULL"
        )
    )
    events = _count(
        apb.WatchAccessEventsResponse.FromString(r["payload"]).charge_recorded.charge_id
        for r in await _events(conn, "access", ["charge_recorded"])
    )
    for charge in acked.charges:
        c.checked += 1
        if not c.exactly_once(stored[charge.key], f"acknowledged charge {charge.key}"):
            continue
        row = row_of[charge.key]
        if row["charge_id"] != charge.charge_id:
            c.problem(f"charge {charge.key}: reply {charge.charge_id}, stored {row['charge_id']}")
        if (row["result"] == apb.CHARGE_RESULT_APPROVED) != charge.approved:
            c.problem(f"charge {charge.charge_id}: the reply and the table disagree on approval")
        if not charge.approved:
            continue
        if row["amount_minor"] != charge.amount_minor:
            c.problem(f"charge {charge.charge_id}: reply {charge.amount_minor}, stored amount")
        for what, count in (("ledger entry", entries), ("charge_recorded event", events)):
            c.exactly_once(count[charge.charge_id], f"{what} of approved charge {charge.charge_id}")
    approved = sum(ch.approved for ch in acked.charges)
    c.figures.update(lost=c.lost, doubled=c.doubled, approved=approved)


async def check_ledger(conn: asyncpg.Connection, audit: Audit) -> None:
    c = audit.add(Check("ledger"))
    c.checked = int(await conn.fetchval("SELECT count(*) FROM access.ledger_entries"))
    for r in await conn.fetch(
        "SELECT entry_id::text AS e, sum(amount_minor) AS s, count(*) AS n "
        "FROM access.postings GROUP BY entry_id HAVING sum(amount_minor) <> 0 OR count(*) < 2"
    ):
        c.problem(f"ledger entry {r['e']} does not balance (sum {r['s']}, {r['n']} postings)")
    for r in await conn.fetch(
        "SELECT currency, sum(amount_minor) AS s FROM access.postings GROUP BY currency"
    ):
        c.figures[f"postings_sum_{r['currency'].strip()}"] = int(r["s"])
        if r["s"] != 0:
            c.problem(f"all postings in {r['currency']} sum to {r['s']}, not 0")
    orphans = await conn.fetchval(
        "SELECT count(*) FROM access.ledger_entries e "
        "WHERE NOT EXISTS (SELECT 1 FROM access.postings p WHERE p.entry_id = e.entry_id)"
    )
    if orphans:
        c.problem(f"{orphans} ledger entries without postings")
    wallets = await conn.fetch(
        "SELECT w.party_id::text AS party, w.balance_minor AS balance, "
        "  coalesce((SELECT sum(p.amount_minor) FROM access.postings p "
        "            WHERE p.account_id = 'wallet:' || w.party_id::text), 0) AS posted, "
        "  (SELECT p.balance_after FROM access.postings p "
        "   WHERE p.account_id = 'wallet:' || w.party_id::text ORDER BY p.seq DESC LIMIT 1) "
        "   AS last_after "
        "FROM access.wallets w"
    )
    for w in wallets:
        if w["balance"] < 0:
            c.problem(f"wallet of party {w['party']} is negative: {w['balance']}")
        if w["balance"] != w["posted"]:
            c.problem(f"wallet {w['party']}: balance {w['balance']}, postings sum {w['posted']}")
        if w["last_after"] is not None and w["last_after"] != w["balance"]:
            c.problem(f"wallet {w['party']}: last posting says {w['last_after']}")
    negative = await conn.fetchval("SELECT count(*) FROM access.postings WHERE balance_after < 0")
    if negative:
        c.problem(f"{negative} wallet postings leave a negative balance")
    approved = await conn.fetchval(
        "SELECT coalesce(sum(amount_minor - refunded_minor), 0) FROM access.charges "
        "WHERE result = $1",
        apb.CHARGE_RESULT_APPROVED,
    )
    merchants = await conn.fetchval(
        "SELECT coalesce(sum(amount_minor), 0) FROM access.postings "
        "WHERE account_id LIKE 'merchant:%'"
    )
    c.figures.update(
        wallets=len(wallets), approved_net_minor=int(approved), merchants_minor=int(merchants)
    )
    if approved != merchants:
        c.problem(f"approved charges net {approved} but merchants hold {merchants}")


async def check_pings(conn: asyncpg.Connection, result: DayResult, audit: Audit) -> None:
    c = audit.add(Check("ping_batches"))
    if result.readers is None:
        return
    acked = result.readers.stats.acked
    rows = await conn.fetch(
        "SELECT batch_id, count(*) AS n FROM location.ping_batches "
        "WHERE batch_id = ANY($1::text[]) GROUP BY batch_id",
        list(acked),
    )
    stored = {r["batch_id"]: r["n"] for r in rows}
    for batch_id in acked:
        c.checked += 1
        c.exactly_once(stored.get(batch_id, 0), f"acknowledged ping batch {batch_id}")
    accepted = sum(acked.values())
    c.figures.update(lost=c.lost, doubled=c.doubled, rows_acked_accepted=accepted)


async def check_captures(conn: asyncpg.Connection, acked: Acknowledged, audit: Audit) -> None:
    c = audit.add(Check("captures"))
    rows = await conn.fetch(
        "SELECT capture_id, photo_id::text AS photo_id FROM photo.photos "
        "WHERE capture_id = ANY($1::text[])",
        list(acked.captures),
    )
    stored = _count(r["capture_id"] for r in rows)
    photo_of = {r["capture_id"]: r["photo_id"] for r in rows}
    for capture_id, photo_id in acked.captures.items():
        c.checked += 1
        if not c.exactly_once(stored[capture_id], f"acknowledged capture {capture_id}"):
            continue
        if photo_id and photo_of[capture_id] != photo_id:
            c.problem(f"capture {capture_id}: acked as {photo_id}, stored {photo_of[capture_id]}")
    c.figures.update(lost=c.lost, doubled=c.doubled)


async def check_nudges(
    conn: asyncpg.Connection, result: DayResult, acked: Acknowledged, audit: Audit
) -> None:
    c = audit.add(Check("nudges"))
    if result.apps is None:
        return
    received = {n.nudge_id for n in result.apps.stats.nudges}
    rows = await conn.fetch(
        "SELECT nudge_id::text AS nudge_id, status, seen_at, acted_at FROM itinerary.nudges "
        "WHERE nudge_id = ANY($1::uuid[])",
        list(received | set(acked.nudge_acks)),
    )
    row_of = {r["nudge_id"]: r for r in rows}
    sent: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for r in await _events(conn, "itinerary", ["nudge_sent", "nudge_acknowledged"]):
        event = ipb.WatchItineraryEventsResponse.FromString(r["payload"])
        if event.HasField("nudge_sent"):
            sent[event.nudge_sent.nudge_id] += 1
        else:
            answered[event.nudge_acknowledged.nudge_id] += 1
    for nudge_id in received:
        c.checked += 1
        if nudge_id not in row_of:
            c.lost += 1
            c.problem(f"nudge {nudge_id} delivered to an app but not stored")
        c.exactly_once(sent[nudge_id], f"nudge_sent event of delivered nudge {nudge_id}")
    for nudge_id, ack in acked.nudge_acks.items():
        c.checked += 1
        row = row_of.get(nudge_id)
        if row is None:
            c.lost += 1
            c.problem(f"acknowledged answer to nudge {nudge_id}: nudge not stored")
            continue
        if row["seen_at"] is None and row["acted_at"] is None:
            c.lost += 1
            c.problem(f"answer {ack} to nudge {nudge_id} acknowledged but not recorded")
        if answered[nudge_id] > 1:
            c.doubled += 1
            c.problem(f"nudge {nudge_id} answered {answered[nudge_id]} times in the stream")
    c.figures.update(
        lost=c.lost, doubled=c.doubled, received=len(received), answers=len(acked.nudge_acks)
    )


# --- consumers caught up -------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    schema: str  # where its cursor is stored
    name: str  # its row in stream_cursors
    producer: str
    kinds: tuple[str, ...]
    keys: frozenset[str] | None = None


def consumers(venue: Venue) -> list[Consumer]:
    """The consumers that keep their cursor in a table (the others rebuild from the
    start at every boot, and are checked by what they serve)."""
    identity_kinds = (
        "band_linked",
        "band_deactivated",
        "consent_changed",
        "guest_created",
        "guest_updated",
        "party_changed",
        "guest_erased",
        "credential_revoked",
    )
    cameras = frozenset(Catalog(venue, PhotoConfig()).linked_attractions)
    return [
        Consumer("access", "identity", "identity", identity_kinds),
        Consumer("queue", "access", "access", ("tap_recorded", "entitlement_changed")),
        Consumer(
            "queue",
            "location",
            "location",
            ("occupancy_changed",),
            frozenset(venue_lines(venue).zones),
        ),
        Consumer("photo", "access-boarding-taps", "access", ("tap_recorded",), cameras),
        Consumer("photo", "identity-guests", "identity", identity_kinds),
        Consumer(
            "itinerary",
            "itinerary-queue-bookings",
            "queue",
            ("booking_created", "booking_called", "booking_cancelled"),
        ),
        Consumer("itinerary", "itinerary-access", "access", ("tap_recorded", "charge_recorded")),
    ]


async def behind(conn: asyncpg.Connection, consumer: Consumer) -> tuple[int, int]:
    """(events after the consumer's cursor it should have handled, events it asked for)."""
    cursor_text = await conn.fetchval(
        f"SELECT cursor FROM {consumer.schema}.stream_cursors WHERE consumer = $1", consumer.name
    )
    cursor = Cursor.decode(cursor_text or "")
    args: list[Any] = [list(consumer.kinds)]
    where = "kind = ANY($1::text[])"
    if consumer.keys is not None:
        args.append(sorted(consumer.keys))
        where += " AND key = ANY($2::text[])"
    total = await conn.fetchval(
        f"SELECT count(*) FROM {consumer.producer}.events WHERE {where}", *args
    )
    args += [str(cursor.txid), cursor.seq]
    n = len(args)
    after = await conn.fetchval(
        f"SELECT count(*) FROM {consumer.producer}.events WHERE {where} "
        f"AND (txid, seq) > (${n - 1}::text::xid8, ${n}::bigint) "
        # Events of transactions still running are not visible to anyone yet.
        "AND txid < pg_snapshot_xmin(pg_current_snapshot())",
        *args,
    )
    return int(after), int(total)


async def settle(
    conn: asyncpg.Connection, venue: Venue, running: set[str], timeout: float = SETTLE_S
) -> dict[str, tuple[int, int]]:
    """Wait until every table-cursor consumer is caught up (or the time is out)."""
    wanted = [c for c in consumers(venue) if c.schema in running and c.producer in running]
    deadline = time.monotonic() + timeout
    while True:
        state = {f"{c.schema}/{c.name}": await behind(conn, c) for c in wanted}
        if all(after == 0 for after, _ in state.values()) or time.monotonic() > deadline:
            return state
        await asyncio.sleep(1.0)


def check_caught_up(state: dict[str, tuple[int, int]], waited: float, audit: Audit) -> None:
    c = audit.add(Check("consumers_caught_up"))
    for name, (after, total) in state.items():
        c.checked += total
        c.figures[name] = {"events": total, "behind": after}
        if after:
            c.problem(f"{name} is {after} events behind its producer after {waited:.0f} s")
    c.figures["settled_after_s"] = round(waited, 1)


# --- the twin's state against a replay of its events ----------------------------------


async def _until_equal(
    compare: Callable[[], Awaitable[list[str]]], timeout: float = 30.0
) -> list[str]:
    """Served state moves on while we look: compare until it agrees or time is out."""
    deadline = time.monotonic() + timeout
    while True:
        problems = await compare()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(1.0)


def _minutes(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds / 60.0)


# How far a served wait may have moved since queue's last tick published it.
DRIFT_S = 5.0


def _within(a: float | None, b: float | None, tolerance: float) -> bool:
    return a is not None and b is not None and abs(a - b) <= tolerance


async def check_queue_replay(
    conn: asyncpg.Connection, suite: Suite, token: str, audit: Audit
) -> None:
    c = audit.add(Check("queue_replay"))
    async with grpc.aio.insecure_channel(suite.addresses["queue"]) as channel:
        stub = queue_pb2_grpc.QueueServiceStub(channel)

        async def compare() -> list[str]:
            wait: dict[str, float | None] = {}
            status: dict[str, int] = {}
            for r in await _events(conn, "queue", ["wait_changed", "status_changed"]):
                event = qpb.WatchQueueEventsResponse.FromString(r["payload"])
                if event.HasField("wait_changed"):
                    w = event.wait_changed
                    wait[w.attraction_id] = (
                        w.posted_wait.ToTimedelta().total_seconds()
                        if w.HasField("posted_wait")
                        else None
                    )
                else:
                    status[event.status_changed.attraction_id] = event.status_changed.status
            served = await stub.GetWaitTimes(
                qpb.GetWaitTimesRequest(), metadata=bearer(token), timeout=30
            )
            problems = []
            c.checked = len(served.waits)
            for a in served.waits:
                posted = (
                    a.posted_wait.ToTimedelta().total_seconds()
                    if a.HasField("posted_wait")
                    else None
                )
                # The queue publishes a wait when its minute changes: the stream
                # and the tip board agree to the minute. The board is computed at
                # the moment it is read and the stream at queue's ticks, so a wait
                # a few seconds from a half minute may round either way (150 s
                # published, 152 s served): that is drift, not a lost change.
                if (
                    a.attraction_id in wait
                    and a.status == qpb.ATTRACTION_STATUS_OPEN
                    and _minutes(wait[a.attraction_id]) != _minutes(posted)
                    and not _within(wait[a.attraction_id], posted, DRIFT_S)
                ):
                    problems.append(
                        f"{a.attraction_id}: serves {posted} s, its events end at "
                        f"{wait[a.attraction_id]} s"
                    )
                if a.attraction_id in status and status[a.attraction_id] != a.status:
                    problems.append(
                        f"{a.attraction_id}: serves status {a.status}, its events end at "
                        f"{status[a.attraction_id]}"
                    )
            c.figures.update(attractions_with_waits=len(wait), status_events=len(status))
            return problems

        for p in await _until_equal(compare):
            c.problem(p)

    # Queue's taps are access's allowed taps it follows, each once.
    stored = {r["tap_id"] for r in await conn.fetch("SELECT tap_id FROM queue.taps")}
    followed = 0
    for r in await _events(conn, "access", ["tap_recorded"]):
        tap = apb.WatchAccessEventsResponse.FromString(r["payload"]).tap_recorded
        if tap.access_point_kind not in TAP_KINDS or not tap.guest_id:
            continue
        followed += 1
        if tap.tap_id not in stored:
            c.problem(f"access tap {tap.tap_id} missing from queue's taps")
    c.checked += followed
    c.figures["taps_followed"] = followed
    c.figures["queue_taps"] = len(stored)


async def check_location_replay(
    conn: asyncpg.Connection, suite: Suite, token: str, audit: Audit
) -> None:
    c = audit.add(Check("location_replay"))
    async with grpc.aio.insecure_channel(suite.addresses["location"]) as channel:
        stub = location_pb2_grpc.LocationServiceStub(channel)

        async def compare() -> list[str]:
            counts: dict[str, int] = {}
            for r in await _events(conn, "location", ["occupancy_changed"]):
                o = lpb.WatchLocationEventsResponse.FromString(r["payload"]).occupancy_changed
                counts[o.zone_id] = o.count
            served: dict[str, int] = {}
            token_ = ""
            while True:
                page = await stub.ListZoneOccupancy(
                    lpb.ListZoneOccupancyRequest(
                        page=common_pb2.PageRequest(page_size=500, page_token=token_)
                    ),
                    metadata=bearer(token),
                    timeout=30,
                )
                served.update({o.zone_id: o.count for o in page.occupancies})
                token_ = page.next_page_token
                if not token_:
                    break
            c.checked = len(served)
            c.figures["zones_with_events"] = len(counts)
            return [
                f"zone {z}: serves {n}, its events end at {counts.get(z, 0)}"
                for z, n in sorted(served.items())
                if n != counts.get(z, 0)
            ]

        for p in await _until_equal(compare):
            c.problem(p)

    # Each consenting guest's current zone in the visits table is where the stream
    # last moved them.
    last: dict[str, str] = {}
    for r in await _events(conn, "location", ["guest_zone_changed"]):
        g = lpb.WatchLocationEventsResponse.FromString(r["payload"]).guest_zone_changed
        last[g.guest_id] = g.to_zone_id
    rows = await conn.fetch(
        "SELECT DISTINCT ON (guest_id) guest_id::text AS g, coalesce(zone_id, '') AS z "
        "FROM location.visits ORDER BY guest_id, entered_at DESC, seq DESC"
    )
    table = {r["g"]: r["z"] for r in rows}
    for guest, zone in last.items():
        c.checked += 1
        if table.get(guest, "") != zone:
            c.problem(f"guest {guest}: visits end in {table.get(guest)!r}, events in {zone!r}")
    c.figures["guests_moved"] = len(last)


async def check_itinerary_bookings(conn: asyncpg.Connection, audit: Audit) -> None:
    """Itinerary's copy of the queue's bookings equals a replay of the queue's
    booking events (the newest event of each booking wins)."""
    c = audit.add(Check("itinerary_bookings_replay"))
    last: dict[str, tuple[bool, str]] = {}
    for r in await _events(
        conn, "queue", ["booking_created", "booking_called", "booking_cancelled"]
    ):
        event = qpb.WatchQueueEventsResponse.FromString(r["payload"])
        which = event.WhichOneof("event")
        if which is None:
            continue
        b = getattr(event, which).booking
        active = which != "booking_cancelled" and b.status in ACTIVE_BOOKINGS
        last[b.booking_id] = (active, b.attraction_id)
    rows = await conn.fetch(
        "SELECT booking_id, active, attraction_id FROM itinerary.queue_bookings"
    )
    table = {r["booking_id"]: (r["active"], r["attraction_id"]) for r in rows}
    for booking_id, state in last.items():
        c.checked += 1
        if booking_id not in table:
            c.lost += 1
            c.problem(f"booking {booking_id} is in queue's stream, not in itinerary")
        elif table[booking_id] != state:
            c.problem(f"booking {booking_id}: itinerary holds {table[booking_id]}, stream {state}")
    c.figures.update(lost=c.lost, bookings=len(last))


async def audit(suite: Suite, result: DayResult, acked: Acknowledged, venue: Venue) -> Audit:
    report = Audit()
    assert suite.database_url is not None
    running = {n for n, p in suite.processes.items() if p.running}
    ops = result.credentials.ops if result.credentials else ""
    token = ops or await suite.admin_token()
    conn = await asyncpg.connect(suite.database_url)
    try:
        began = time.monotonic()
        state = await settle(conn, venue, running)
        check_caught_up(state, time.monotonic() - began, report)
        if "access" in running:
            await check_taps(conn, acked, report)
            await check_charges(conn, acked, report)
            await check_ledger(conn, report)
        if "location" in running:
            await check_pings(conn, result, report)
            await check_location_replay(conn, suite, token, report)
        if "photo" in running:
            await check_captures(conn, acked, report)
        if "itinerary" in running:
            await check_nudges(conn, result, acked, report)
        if "queue" in running and "access" in running:
            await check_queue_replay(conn, suite, token, report)
        if "queue" in running and "itinerary" in running:
            await check_itinerary_bookings(conn, report)
        services = report.add(Check("services_alive"))
        for name, proc in suite.processes.items():
            services.checked += 1
            if not proc.running:
                services.problem(f"{name} is not running (see {proc.log_path})")
    finally:
        await conn.close()
    return report

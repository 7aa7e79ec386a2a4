"""The nudger and the store on the real PostgreSQL (a schema of this test's own),
fed constructed candidates: what is stored and delivered when consent is off,
when a key repeats, when the budget is spent; acknowledgements that change the
plan; withdrawals; the ops counts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.itinerary import facts as facts_module
from services.itinerary import nudger as nudger_module
from services.itinerary import planning
from services.itinerary.directory import Directory
from services.itinerary.live import LiveVenue
from services.itinerary.messages import FEED_KINDS, FEED_NUDGE, FEED_WITHDRAWN
from services.itinerary.model import (
    ACK_ACCEPTED,
    ACK_DISMISSED,
    BOARDING_GROUP_CALLED,
    GO_NOW,
    NICE_TO_DO,
    NORMAL,
    SKIP_OR_MOVE,
    SKIPPED,
    Candidate,
    OpenRoute,
    PlanSettings,
    SkipStop,
    Window,
    Wish,
)
from services.itinerary.nudger import Nudger
from services.itinerary.plans import PlanBook
from services.itinerary.router import Router
from services.itinerary.store import ItineraryStore
from services.platform import events, migrations
from services.platform.clock import VenueClock
from services.platform.events import EventHub
from services.runner.suite import free_port
from services.venue_model import load_venue
from venue.identity.v1 import identity_pb2 as ipb

ITINERARY_MIGRATIONS = Path(facts_module.__file__).parent / "migrations"
NOON = datetime.fromisoformat("2026-07-04T12:00:00-04:00")


@pytest.fixture(scope="module")
def park() -> facts_module.VenueFacts:
    return facts_module.from_venue(load_venue(Path("venues/lantern-bay-park.yaml")))


@dataclass
class World:
    store: ItineraryStore
    plans: PlanBook
    nudger: Nudger
    directory: Directory
    pool: asyncpg.Pool
    clock: VenueClock

    def guest(self, *, nudges: bool = True, party: str = "") -> tuple[str, str]:
        guest_id, party_id = str(uuid.uuid4()), party or str(uuid.uuid4())
        self.directory.apply(
            ipb.WatchIdentityEventsResponse(
                guest_created=ipb.GuestCreated(
                    guest_id=guest_id,
                    party_id=party_id,
                    role=ipb.PARTY_ROLE_ADULT,
                    consent=ipb.Consent(personalized_nudges=nudges),
                )
            )
        )
        return guest_id, party_id

    async def feed(self, guest_id: str) -> list[events.StoredEvent]:
        return await events.read_after(self.pool, events.ORIGIN, 100, FEED_KINDS, key=guest_id)


@pytest.fixture
async def world(
    database_url: str, schema: str, park: facts_module.VenueFacts
) -> AsyncIterator[World]:
    conn = await asyncpg.connect(database_url)
    await migrations.migrate(
        conn,
        schema,
        {"platform": migrations.PLATFORM_MIGRATIONS, "itinerary": ITINERARY_MIGRATIONS},
    )
    await conn.close()
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=4, server_settings={"search_path": schema}
    )
    hub = EventHub(pool, database_url, schema)
    await hub.start()
    clock = VenueClock(start=NOON, anchor=datetime.now().timestamp(), speed=1.0)
    store = ItineraryStore(pool)
    directory = Directory()
    dead = f"127.0.0.1:{free_port()}"
    channel = grpc.aio.insecure_channel(dead)
    router = Router(lambda: channel, park)
    plans = PlanBook(store, park, router, directory, clock, hub)
    nudger = Nudger(store, plans, park, directory, LiveVenue(), router, clock, hub)
    yield World(store, plans, nudger, directory, pool, clock)
    for closing in (channel.close(), hub.stop(), pool.close()):
        # Bounded: a loaded machine must not hang the session on a goodbye.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing, 10)


def go_now(key: str, minutes: float = 20, subject: str = "") -> Candidate:
    return Candidate(
        kind=GO_NOW,
        dedup_key=key,
        subject=subject or key,
        title="Short wait",
        body="Go now",
        reason="It fell below its forecast",
        action=OpenRoute("rocket-coaster", (), 120.0),
        time_saved_s=minutes * 60,
        urgency=NORMAL,
        expires_at=NOON + timedelta(hours=1),
    )


async def test_consent_off_stores_and_delivers_nothing(world: World) -> None:
    guest, party = world.guest(nudges=False)
    day = NOON.date()
    sent = await world.nudger._decide(party, "", [go_now("a")], [], NOON, day)
    assert sent == 0
    assert await world.feed(guest) == []
    # The candidate is counted for ops, as held back for want of consent.
    why = await world.pool.fetchval("SELECT why FROM nudge_candidates WHERE guest_id = $1", guest)
    assert why == "consent"


async def test_a_key_is_stored_once_and_the_budget_holds(world: World) -> None:
    guest, party = world.guest()
    day = NOON.date()
    assert await world.nudger._decide(party, "", [go_now("a")], [], NOON, day) == 1
    # The same key again (a replayed event, a restart): nothing new.
    assert await world.nudger._decide(party, "", [go_now("a")], [], NOON, day) == 0
    # The park allows 3 an hour, 15 minutes apart.
    times = [NOON + timedelta(minutes=m) for m in (5, 15, 30, 45, 50)]
    sent = [
        await world.nudger._decide(party, "", [go_now(f"k{i}")], [], t, day)
        for i, t in enumerate(times)
    ]
    assert sent == [0, 1, 1, 0, 0]
    stored = await world.store.nudges_on(day, guest)
    assert [n.dedup_key for n in stored] == ["a", "k1", "k2"]
    feed = await world.feed(guest)
    assert [e.kind for e in feed].count(FEED_NUDGE) == 3
    # A service message is outside the budget.
    board = replace(go_now("board:1"), kind=BOARDING_GROUP_CALLED)
    assert await world.nudger._decide(party, "", [board], [], times[-1], day) == 1


async def test_withdrawal_reaches_the_feed_once(world: World) -> None:
    guest, party = world.guest()
    day = NOON.date()
    await world.nudger._decide(party, "", [go_now("a")], [], NOON, day)
    [nudge] = await world.store.nudges_on(day, guest)
    for _ in range(2):
        await world.nudger._decide(party, "", [], [nudge], NOON + timedelta(minutes=1), day)
    kinds = [e.kind for e in await world.feed(guest)]
    assert kinds == [FEED_NUDGE, FEED_WITHDRAWN]
    [after] = await world.store.nudges_on(day, guest)
    assert after.status_at(NOON) == 6  # withdrawn


async def test_accepting_a_skip_changes_the_plan(
    world: World, park: facts_module.VenueFacts
) -> None:
    guest, party = world.guest()
    day = NOON.date()
    wishes = (
        Wish(str(uuid.uuid4()), "rocket-coaster", NICE_TO_DO),
        Wish(str(uuid.uuid4()), "royal-carousel", NICE_TO_DO),
    )
    created = await world.plans.create(
        party, day, PlanSettings(start_place=park.entrance), wishes, None, lambda s: b""
    )
    assert not isinstance(created, bytes)
    plan = created.plan
    skip = planning.stop_id(plan.plan_id, wish_id=wishes[0].wish_id)
    cand = replace(
        go_now("skip"), kind=SKIP_OR_MOVE, action=SkipStop(skip), subject=skip, time_saved_s=1200
    )
    await world.nudger._decide(party, plan.plan_id, [cand], [], NOON, day)
    [nudge] = await world.store.nudges_on(day, guest)
    acked, changed = await world.nudger.acknowledge(nudge.nudge_id, guest, ACK_ACCEPTED, NOON)
    assert acked.status == 3 and changed is not None
    assert changed.plan.version == plan.version + 1
    assert changed.plan.stop(skip).state == SKIPPED  # type: ignore[union-attr]
    assert wishes[0].wish_id in changed.plan.guest_skipped
    assert [k.reason for k in changed.plan.skipped] == [planning.GUEST_CHOICE]
    # Accepting again changes nothing more.
    again, unchanged = await world.nudger.acknowledge(nudge.nudge_id, guest, ACK_ACCEPTED, NOON)
    assert again.status == 3 and unchanged is None


async def test_dismissals_are_learned_and_counted(world: World) -> None:
    guest, party = world.guest()
    day = NOON.date()
    await world.nudger._decide(party, "", [go_now("a", 15)], [], NOON, day)
    [nudge] = await world.store.nudges_on(day, guest)
    await world.nudger.acknowledge(nudge.nudge_id, guest, ACK_DISMISSED, NOON)
    # 15 minutes saved was enough before; after a dismissal it needs 20.
    later = NOON + timedelta(minutes=30)
    assert await world.nudger._decide(party, "", [go_now("b", 15)], [], later, day) == 0
    assert await world.nudger._decide(party, "", [go_now("c", 25)], [], later, day) == 1
    period = Window(NOON - timedelta(hours=1), NOON + timedelta(hours=2))
    counts = {c.kind: c for c in await world.store.kind_counts(period, NOON + timedelta(hours=3))}
    go = counts[GO_NOW]
    assert (go.candidates, go.withheld, go.sent, go.dismissed, go.ignored) == (3, 1, 2, 1, 1)


async def test_erasure_leaves_nothing_of_the_guest(world: World) -> None:
    guest, party = world.guest()
    await world.nudger._decide(party, "", [go_now("a")], [], NOON, NOON.date())
    await world.store.erase_guest(guest)
    assert await world.store.nudges_on(NOON.date(), guest) == []
    assert await world.feed(guest) == []
    assert not await world.pool.fetchval(
        "SELECT count(*) FROM nudge_candidates WHERE guest_id = $1", guest
    )


async def test_the_nudges_metric_counts_by_kind_and_outcome(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """venue.itinerary.nudges as docs/observability.md names it: one counter
    with venue.nudge_kind and venue.outcome."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("venue.itinerary").create_counter("venue.itinerary.nudges")
    monkeypatch.setattr(nudger_module, "_nudges", counter)
    guest, party = world.guest()
    day = NOON.date()
    await world.nudger._decide(party, "", [go_now("a"), go_now("b")], [], NOON, day)
    # Re-evaluated: "b" is the same held-back candidate, counted once.
    await world.nudger._decide(party, "", [go_now("b")], [], NOON + timedelta(minutes=1), day)
    [nudge] = await world.store.nudges_on(day, guest)
    await world.nudger.acknowledge(nudge.nudge_id, guest, ACK_DISMISSED, NOON)
    await world.nudger._decide(party, "", [go_now("c")], [], NOON + timedelta(minutes=20), day)
    [_, open_one] = await world.store.nudges_on(day, guest)
    for _ in range(2):  # withdrawn once, counted once
        await world.nudger._decide(party, "", [], [open_one], NOON + timedelta(minutes=21), day)
    data = reader.get_metrics_data()
    assert data is not None
    counts: dict[tuple[str, str], int] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                assert metric.name == "venue.itinerary.nudges"
                for point in metric.data.data_points:
                    attrs = dict(point.attributes or {})
                    assert set(attrs) == {"venue.nudge_kind", "venue.outcome"}
                    key = (str(attrs["venue.nudge_kind"]), str(attrs["venue.outcome"]))
                    counts[key] = int(point.value)  # type: ignore[union-attr]
    assert counts == {
        ("go_now", "sent"): 2,
        ("go_now", "suppressed"): 1,
        ("go_now", "dismissed"): 1,
        ("go_now", "withdrawn"): 1,
    }
    provider.shutdown()

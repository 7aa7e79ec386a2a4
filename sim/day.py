"""Playing one day against a running suite.

    day = Day(config, venue, clock, addresses, services, admin_token)
    result = await day.play(on_progress)

The installer registers the venue's devices and staff; the ticket desk registers
each party shortly before it arrives; the world's events are released as the
shared venue clock reaches them, and what happens goes out through the devices
and apps of sim.suite. When everyone has gone home (or the hours asked for are
over) the devices finish sending, the observer collects the twin's figures, and
the result holds everything the report needs.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from services.platform.clock import VenueClock
from services.venue_model import Venue
from sim.clock import VenueTime
from sim.config import WorldConfig
from sim.frame import DayFrame
from sim.geography import Geography
from sim.population import Party, generate
from sim.ports import OfflineApps, OfflineDevices
from sim.suite.apps import SuiteApps
from sim.suite.calls import Caller, Tasks
from sim.suite.channels import Stubs
from sim.suite.desk import Desk
from sim.suite.devices import SuiteDevices
from sim.suite.installer import Credentials, Installer
from sim.suite.observer import Observer
from sim.suite.pump import Pump
from sim.suite.readers import Readers, gateways_of
from sim.suite.stats import CallStats
from sim.world import World

# World events handled between two looks at the event loop. The calls' replies
# that came in meanwhile are all handled at each look (sim.suite.pump), so a bigger
# budget no longer starves them; a small one (200) let the world lag 49 venue
# minutes behind in a 3,000-guest day.
BUDGET = 2000
# Wall seconds the devices and apps get to finish sending after the day.
DRAIN_S = 180.0


@dataclass
class Progress:
    phase: str
    venue_s: float
    label: str
    arrived: int
    inside: int
    left: int
    expected_guests: int
    events_per_s: float
    calls: int
    failures: int
    in_flight: int
    backlog: int
    lag_s: float
    # Calls in flight and calls held back by their cap, by kind of caller.
    in_flight_by_kind: dict[str, int] = field(default_factory=dict)
    waiting_by_kind: dict[str, int] = field(default_factory=dict)


@dataclass
class DayResult:
    config: WorldConfig
    venue: Venue
    frame: DayFrame
    world: World
    services: set[str]
    calls: CallStats
    credentials: Credentials | None = None
    devices: SuiteDevices | None = None
    readers: Readers | None = None
    apps: SuiteApps | None = None
    observer: Observer | None = None
    desk: Desk | None = None
    phases: dict[str, float] = field(default_factory=dict)
    # World CPU seconds spent on each venue hour (by the hour's start, day seconds).
    cpu_by_hour: dict[int, float] = field(default_factory=dict)
    lag_samples: list[tuple[float, float]] = field(default_factory=list)
    # (venue s, guests arrived, {kind: (in flight, waiting for the cap)}) twice a second.
    flight_samples: list[tuple[float, int, dict[str, tuple[int, int]]]] = field(
        default_factory=list
    )
    callers: dict[str, Caller] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    run_tag: str = ""
    # Venue time at which Ctrl-C ended the day early, if it did.
    interrupted_at: float | None = None

    @property
    def guest_index(self) -> dict[str, int]:
        return {
            m.guest_id: m.index for a in self.world.agents for m in a.party.members if m.guest_id
        }


def make_population(
    venue: Venue, config: WorldConfig, frame: DayFrame, run_tag: str
) -> tuple[list[Party], float, float, float]:
    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(5)[4])
    open_s = frame.at_clock(venue.hours.opens)
    close_s = frame.at_clock(venue.hours.closes)
    end_s = close_s if config.hours is None else min(close_s, open_s + config.hours * 3600)
    parties = generate(
        venue, config.guests, rng, config.shares, run_tag, frame.at_clock, open_s, end_s, close_s
    )
    return parties, open_s, close_s, end_s


def make_callers(stats: CallStats, config: WorldConfig) -> dict[str, Caller]:
    """One Caller per kind of caller, each with its own cap on calls in flight."""
    limits = {
        "desk": config.desk_in_flight,
        "devices": config.devices_in_flight,
        "apps": config.apps_in_flight,
        "ops": config.ops_in_flight,
    }
    return {kind: Caller(stats, limit, kind=kind) for kind, limit in limits.items()}


def offline_world(
    venue: Venue, config: WorldConfig, frame: DayFrame, geo: Geography | None = None
) -> World:
    """The world with no suite attached (everyone registered, nothing reported)."""
    run_tag = "offline"
    parties, *_ = make_population(venue, config, frame, run_tag)
    for party in parties:
        party.registered = True
    return World(venue, frame, config, parties, OfflineDevices(), OfflineApps(), run_tag, geo)


class Day:
    def __init__(
        self,
        config: WorldConfig,
        venue: Venue,
        clock: VenueClock,
        addresses: Mapping[str, str],
        services: set[str],
        admin_token: str,
    ) -> None:
        self.config = config
        self.venue = venue
        self.services = set(services)
        self.addresses = addresses
        self.admin_token = admin_token
        start = clock.start.astimezone(venue.tzinfo)
        self.frame = DayFrame.of(start.date(), venue.timezone)
        self.time = VenueTime(clock, self.frame)
        self.run_tag = secrets.token_hex(3)
        self.stats = CallStats()
        self.callers = make_callers(self.stats, config)
        self.tasks = Tasks()
        self.phase = "starting"
        parties, *_ = make_population(venue, config, self.frame, self.run_tag)
        self.parties = parties
        self.expected_guests = sum(p.size for p in parties)
        self.world: World | None = None
        self.result: DayResult | None = None
        self.lag_s = 0.0
        # Set by Ctrl-C: the day ends where it is, and the report is written.
        self.stop_requested = False

    def progress(self) -> Progress:
        world = self.world
        truth = world.truth if world else None
        arrived = truth.arrived_guests if truth else 0
        left = truth.left_guests if truth else 0
        inside = sum(a.party.size for a in world.present.values() if a.inside) if world else 0
        now = self.time.now()
        return Progress(
            phase=self.phase,
            venue_s=now,
            label=self.frame.label(now),
            arrived=arrived,
            inside=inside,
            left=left,
            expected_guests=self.expected_guests,
            events_per_s=self.stats.events_per_second(),
            calls=self.stats.total_calls,
            failures=self.stats.total_failures,
            in_flight=sum(c.in_flight for c in self.callers.values()),
            backlog=len(self.tasks),
            lag_s=self.lag_s,
            in_flight_by_kind={k: c.in_flight for k, c in self.callers.items()},
            waiting_by_kind={k: c.waiting for k, c in self.callers.items()},
        )

    async def play(self, on_progress: Callable[[Progress], None] | None = None) -> DayResult:
        stubs = Stubs.connect(self.addresses)
        phases: dict[str, float] = {}
        began = time.monotonic()
        try:
            self.phase = "installing devices"
            gateways = list(gateways_of(self.venue))
            installer = Installer(
                stubs, self.callers["ops"], self.venue, self.admin_token, gateways
            )
            # The online shop sells tickets days ahead: the desk starts as soon as
            # it has its credentials, while the devices are being installed.
            creds = await installer.staff()
            desk = Desk(
                stubs,
                self.callers["desk"],
                self.venue,
                self.frame,
                creds.desk,
                self.run_tag,
                self.services,
            )
            desk_work = self.tasks.spawn(desk.run_day(self.parties))
            await installer.devices()
            phases["install"] = time.monotonic() - began
            result = await self._play(stubs, creds, desk, desk_work, phases, on_progress)
        finally:
            await self.tasks.cancel()
            await stubs.close()
        phases["total"] = time.monotonic() - began
        return result

    async def _play(
        self,
        stubs: Stubs,
        creds: Credentials,
        desk: Desk,
        desk_work: asyncio.Task[None],
        phases: dict[str, float],
        on_progress: Callable[[Progress], None] | None,
    ) -> DayResult:
        config = self.config
        readers = (
            Readers(
                self.venue,
                self.frame,
                stubs.location,
                creds.devices,
                self.run_tag,
                self.stats,
                config.seed,
            )
            if "location" in self.services
            else None
        )
        devices = SuiteDevices(
            self.venue,
            self.frame,
            stubs,
            self.callers["devices"],
            creds.devices,
            creds.ops,
            readers,
            self.services,
            self.tasks,
            self.run_tag,
            ops_call=self.callers["ops"],
        )
        apps = SuiteApps(
            self.venue,
            self.frame,
            stubs,
            self.callers["apps"],
            self.services,
            self.tasks,
            self.run_tag,
            creds.ops,
            self.time,
            config.seed + 7,
            config.tipboard_period_s,
            config.shares.suggestions,
        )
        world = World(self.venue, self.frame, config, self.parties, devices, apps, self.run_tag)
        devices.attach(world)
        devices.clock_now = self.time.now
        apps.attach(world)
        self.world = world
        observer = Observer(
            stubs,
            self.callers["ops"],
            self.frame,
            self.time,
            creds.ops,
            self.services,
            config.occupancy_period_s,
            config.seed + 11,
        )
        result = DayResult(
            config,
            self.venue,
            self.frame,
            world,
            self.services,
            self.stats,
            creds,
            devices,
            readers,
            apps,
            observer,
            desk,
            phases,
            run_tag=self.run_tag,
            callers=self.callers,
        )
        self.result = result
        guest_index = desk.guest_index

        def truth_zone(party: Party, t: float) -> str:
            agent = world.by_party[party.index]
            return world.geo.zone_of[world.position(agent, t)]

        def over() -> bool:
            return world.done or self.stop_requested

        if readers is not None:
            readers.start()
        self.tasks.spawn(apps.run_tipboard(over))
        self.tasks.spawn(
            observer.run(
                over,
                lambda: [a.party for a in world.present.values() if a.inside],
                truth_zone,
                guest_index,
            )
        )
        world.start()
        day_began = time.monotonic()
        await self._loop(world, result, on_progress)
        phases["day"] = time.monotonic() - day_began
        result.interrupted_at = world.engine.now if self.stop_requested else None
        finishing = time.monotonic()
        self.phase = "devices finishing"
        if on_progress:
            on_progress(self.progress())
        # Parties the desk has not reached by now will not come today.
        desk_work.cancel()
        apps.close()
        # Devices send what they still hold (a busy suite may be minutes behind); what
        # is left after this shows in the report as taps not decided.
        await self.tasks.drain(timeout=DRAIN_S)
        if readers is not None:
            await readers.close()
        self.phase = "collecting the twin's figures"
        if on_progress:
            on_progress(self.progress())
        await observer.closing([a.party for a in world.agents], guest_index)
        phases["finishing"] = time.monotonic() - finishing
        result.errors = [repr(e) for e in devices.errors + self.tasks.errors][:50]
        return result

    async def _loop(
        self,
        world: World,
        result: DayResult,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        engine = world.engine
        loop = asyncio.get_running_loop()
        pump = Pump.find(loop)
        last_report = 0.0
        cpu_mark = time.process_time()
        hour = int(engine.now // 3600)
        self.phase = "playing the day"
        while not world.done and not self.stop_requested:
            now = self.time.now()
            handled = engine.run_until(min(now, world.end_s), BUDGET)
            if not pump.found:
                pump = Pump.find(loop)
            pump.drain()
            if int(engine.now // 3600) != hour:
                cpu = time.process_time()
                result.cpu_by_hour[hour * 3600] = cpu - cpu_mark
                cpu_mark, hour = cpu, int(engine.now // 3600)
            nxt = engine.next_time
            self.lag_s = max(0.0, now - nxt) if nxt is not None and nxt < now else 0.0
            wall = time.monotonic()
            if wall - last_report > 0.5:
                last_report = wall
                result.lag_samples.append((now, self.lag_s))
                result.flight_samples.append(
                    (
                        now,
                        world.truth.arrived_guests,
                        {k: (c.in_flight, c.waiting) for k, c in self.callers.items()},
                    )
                )
                if on_progress:
                    on_progress(self.progress())
            if handled >= BUDGET:
                await asyncio.sleep(0)
                continue
            if nxt is None:
                break
            await asyncio.sleep(min(max(self.time.wall_until(nxt), 0.002), 0.1))
        result.cpu_by_hour[hour * 3600] = time.process_time() - cpu_mark

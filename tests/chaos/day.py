"""A simulated day against the real suite, with faults injected while it plays.

The suite starts as `venue run` starts it (real processes, real PostgreSQL, the
shared venue clock); the world plays its day through its devices and apps,
whose calls retry with deadlines, backoff and their idempotency keys; while the
day is being played the faults go in one after another, each once the suite
serves again after the last. When the day is over and every device has sent
what it held, the audit (tests.chaos.audit) compares what the suite
acknowledged with what its databases hold and what it serves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from services.platform.clock import VenueClock
from services.platform.config import DEFAULT_VENUE_FILE
from services.runner.suite import Suite, auto_ports, implemented_services
from services.venue_model import load_venue
from sim.config import WorldConfig
from sim.day import Day, DayResult
from sim.frame import DayFrame
from sim.run import head_start_s, startup_allowance_s
from tests.chaos.audit import Audit, audit
from tests.chaos.faults import Fault, Injected, Injector, timed
from tests.chaos.record import Acknowledged, recording_callers

# Services whose connections are cut: they serve the long-lived streams
# (WatchIdentityEvents, WatchAccessEvents, IngestPings and WatchLocationEvents,
# WatchQueueEvents, SubscribeNudges).
STREAM_SERVICES = ("identity", "access", "location", "queue", "itinerary")


@dataclass
class ChaosConfig:
    guests: int = 300
    hours: float = 1.0
    speed: float = 60.0
    seed: int = 7
    venue_file: Path = DEFAULT_VENUE_FILE
    # Services killed with SIGKILL in turn (None: every one that runs).
    kill: list[str] | None = None
    postgres: bool = True
    drop: list[str] = field(default_factory=lambda: list(STREAM_SERVICES))
    stall: str | None = "identity"
    # Longer than the world's call deadline (10 s) and the services' own.
    stall_s: float = 12.0
    # How many times the whole plan of faults is played over the day.
    rounds: int = 1
    # Wall seconds between one fault's recovery and the next fault.
    gap_s: float = 2.0
    # Attempts of a device's call before it gives up: a real turnstile or till
    # keeps what it has not got an answer for through a service's restart (about
    # two minutes of tries with backoff capped at five seconds).
    attempts: int = 30


def plan(config: ChaosConfig, services: list[str]) -> list[Fault]:
    """The faults in the order they go in: kills spread between the others."""
    kills = [Fault("kill", s) for s in (config.kill if config.kill is not None else services)]
    others: list[Fault] = [Fault("drop", s) for s in config.drop if s in services]
    if config.postgres:
        others.insert(min(1, len(others)), Fault("postgres", "postgres"))
    if config.stall and config.stall in services:
        others.insert(min(2, len(others)), Fault("stall", config.stall, config.stall_s))
    faults: list[Fault] = []
    while kills or others:
        if kills:
            faults.append(kills.pop(0))
        if others:
            faults.append(others.pop(0))
    return faults * config.rounds


@dataclass
class ChaosRun:
    config: ChaosConfig
    injected: list[Injected]
    audit: Audit
    result: DayResult
    acked: Acknowledged
    wall_s: dict[str, float]

    def summary(self) -> dict[str, Any]:
        calls = self.result.calls
        readers = self.result.readers
        apps = self.result.apps
        return {
            "config": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.config).items()
            },
            "when": datetime.now().isoformat(timespec="seconds"),
            "load_avg": os.getloadavg(),
            "services": sorted(self.result.services),
            "faults": [asdict(i) for i in self.injected],
            "faults_injected": sum(1 for i in self.injected if i.injected),
            "calls": {
                "total": calls.total_calls,
                "retries": sum(m.retries for m in calls.methods.values()),
                "failed_for_good": calls.total_failures,
                "failures": calls.failure_log[:40],
                "by_method": {
                    name: {
                        "ok": m.ok,
                        "retries": m.retries,
                        "failed": dict(m.failures),
                    }
                    for name, m in sorted(calls.methods.items())
                },
                "world_errors": self.result.errors,
            },
            "streams": {
                "ping_stream_errors": dict(readers.stats.stream_errors) if readers else {},
                "ping_batches_resent": readers.stats.resent if readers else 0,
                "nudge_stream_errors": dict(apps.stats.stream_errors) if apps else {},
                "nudge_streams_opened": apps.stats.streams_opened if apps else 0,
            },
            "acknowledged": {
                "taps": len(self.acked.taps),
                "charges": len(self.acked.charges),
                "ping_batches": len(readers.stats.acked) if readers else 0,
                "captures": len(self.acked.captures),
                "photographer_taps": self.acked.photographer_taps,
                "nudges_received": len(apps.stats.nudges) if apps else 0,
                "nudge_acks": len(self.acked.nudge_acks),
            },
            "audit": self.audit.as_dict(),
            "wall_s": self.wall_s,
        }


async def run_chaos(
    config: ChaosConfig,
    work: Path,
    database_url: str | None = None,
    log: Callable[[str], None] = print,
) -> ChaosRun:
    venue = load_venue(config.venue_file)
    world = WorldConfig(
        venue_file=config.venue_file.resolve(),
        guests=config.guests,
        seed=config.seed,
        speed=config.speed,
        hours=config.hours,
    )
    # A busy machine restarts a service several times slower: the day runs
    # slower by as much (as the suite's start-up allowance grows, sim.run), so
    # the faults still land while guests are in the park.
    busy = min(4.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))
    config = dataclasses.replace(config, speed=config.speed / busy)
    world = dataclasses.replace(world, speed=config.speed)
    today = datetime.now(venue.tzinfo).date()
    frame = DayFrame.of(today, venue.timezone)
    open_s = frame.at_clock(venue.hours.opens)
    services = implemented_services()
    allowance = startup_allowance_s(len(services))
    clock = VenueClock(
        start=frame.instant(open_s - head_start_s(world.guests, world.speed, open_s)),
        anchor=time.time() + allowance,
        speed=world.speed,
    )
    suite = Suite(
        data_dir=work / "data",
        services=services,
        database_url=database_url,
        clock=clock,
        ports=auto_ports(),
        venue_file=world.venue_file,
    )
    wall: dict[str, float] = {"busy_factor": busy}
    began = time.monotonic()
    log(f"chaos: starting {len(services)} services, logs in {suite.log_dir}")
    await suite.start(timeout=240)
    wall["suite_start"] = time.monotonic() - began
    try:
        injector = Injector(suite, embedded=database_url is None)
        admin = await suite.admin_token()
        day = Day(world, venue, clock, suite.addresses, set(suite.processes), admin)
        acked = Acknowledged()
        day.callers.update(recording_callers(day.callers, acked, config.attempts))
        faults = plan(config, list(suite.processes))
        injected: list[Injected] = []

        async def one(fault: Fault, at: float) -> None:
            label = day.frame.label(day.time.now())
            log(f"chaos: {fault.kind} {fault.target} at {label} (day {at:.0f} s)")
            took, detail = await timed(injector, fault)
            ok = bool(detail.pop("injected", True))
            injected.append(Injected(fault.kind, fault.target, label, at, took, detail, ok))
            log(f"chaos:   {fault.kind} {fault.target}: served again after {took:.1f} s {detail}")

        async def inject_all() -> None:
            """Faults spread over the day's open hours, each in its own task: on a busy
            machine a restart takes long, and the next fault does not wait for it
            (unless it hits the same process)."""
            opens = day.frame.at_clock(venue.hours.opens)
            while day.phase != "playing the day" or day.time.now() < opens:
                await asyncio.sleep(0.2)
            began = time.monotonic()
            spacing = max(config.gap_s, 0.8 * config.hours * 3600 / config.speed / len(faults))
            running: dict[str, asyncio.Task[None]] = {}
            last = began - config.gap_s
            for i, fault in enumerate(faults):
                # On schedule, and never two at the same instant after a wait.
                due = max(began + (i + 0.5) * spacing, last + config.gap_s)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                # One fault at a time per process, and none while the database restarts.
                for key in (fault.target, "postgres"):
                    if key in running:
                        await running[key]
                if fault.kind == "postgres":
                    await asyncio.gather(*running.values())
                last = time.monotonic()
                running[fault.target] = asyncio.create_task(one(fault, last - began))
            await asyncio.gather(*running.values())

        faulting = asyncio.create_task(inject_all())
        play_began = time.monotonic()
        result = await day.play()
        # Faults still going when the world went home finish before the audit.
        await faulting
        wall["day"] = time.monotonic() - play_began
        log("chaos: the day is over; auditing")
        audit_began = time.monotonic()
        report = await audit(suite, result, acked, venue)
        wall["audit"] = time.monotonic() - audit_began
    finally:
        await suite.stop()
    wall["total"] = time.monotonic() - began
    return ChaosRun(config, injected, report, result, acked, wall)

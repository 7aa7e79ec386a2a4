"""`venue run`: start the suite on a shared venue clock, play a day, write the report.

The clock reaches its start some wall seconds after the suite is asked to start (more
for more services), and opening a while after that (the installer and the ticket desk work
before the gates open); it runs at `--speed` for every process of the suite and
for the world. Each run plays the next venue day of its data directory, so a twin
that keeps its history sees one day after another, as in a real venue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from services.platform.clock import VenueClock
from services.platform.config import ROOT
from services.runner.suite import Suite, auto_ports, implemented_services
from services.venue_model import Venue, load_venue
from sim.config import WorldConfig
from sim.day import Day
from sim.frame import DayFrame
from sim.progress import View
from sim.report import write_report


def startup_allowance_s(services: int, load: float | None = None) -> float:
    """Wall seconds the suite gets to start before the venue clock reaches its start.

    The clock is fixed when the processes start, so the world's head start must not
    depend on how long they take: every service loads the venue and replays the
    streams it follows. A quiet machine starts seven in well under the base
    allowance; a busy one (load above its cores) takes that many times longer, up
    to four."""
    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0] / cores if load is None else load / cores
    return (10.0 + 4.0 * services) * min(4.0, max(1.0, busy))


def head_start_s(guests: int, speed: float, open_s: float) -> float:
    """Venue seconds between the clock's start and opening: the installer and the
    ticket desk work before the gates open, longer for a bigger day. At least half
    an hour of venue time, and never before midnight."""
    wall = 30.0 + 30.0 * min(1.0, guests / 10_000)
    return min(open_s, max(1800.0, wall * speed))


def next_day(data_dir: Path, venue: Venue) -> date:
    """The day after the last one played on this installation, and never in the past."""
    today = datetime.now(venue.tzinfo).date()
    marker = data_dir / "world" / f"{venue.id}.last-day"
    if marker.exists():
        last = date.fromisoformat(marker.read_text().strip())
        return max(today, last + timedelta(days=1))
    return today


def remember_day(data_dir: Path, venue: Venue, day: date) -> None:
    marker = data_dir / "world" / f"{venue.id}.last-day"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(day.isoformat())


def config_from(args: argparse.Namespace) -> WorldConfig:
    defaults = WorldConfig()
    return WorldConfig(
        venue_file=(args.venue or defaults.venue_file).resolve(),
        guests=args.guests,
        seed=args.seed,
        speed=args.speed or defaults.speed,
        hours=args.hours,
    )


class Signals:
    """SIGTERM (a supervisor, `kill`) stops at once: the day is dropped and the
    suite and its database are stopped before exiting, whatever the phase (the
    services run in sessions of their own, so nothing else would stop them).
    Ctrl-C ends the day where it is and still writes the report; a second Ctrl-C
    stops at once like SIGTERM."""

    def __init__(self, main: asyncio.Task[int]) -> None:
        self.main = main
        self.play: Day | None = None
        self.terminated = False

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> Signals:
        main = asyncio.current_task()
        assert main is not None
        signals = cls(main)
        loop.add_signal_handler(signal.SIGINT, signals.interrupt)
        loop.add_signal_handler(signal.SIGTERM, signals.terminate)
        return signals

    def terminate(self) -> None:
        if not self.terminated:
            self.terminated = True
            self.main.cancel()

    def interrupt(self) -> None:
        if self.play is None or self.play.stop_requested:
            self.terminate()
        else:
            self.play.stop_requested = True


async def run_day(args: argparse.Namespace) -> int:
    config = config_from(args)
    view = View(f"Venue twin: a simulated day ({config.guests:,} guests)", live=args.live)
    venue = load_venue(config.venue_file)
    data_dir: Path = args.data_dir.resolve()
    day = next_day(data_dir, venue)
    frame = DayFrame.of(day, venue.timezone)
    open_s = frame.at_clock(venue.hours.opens)
    services = args.services or implemented_services()
    allowance = startup_allowance_s(len(services))
    clock = VenueClock(
        start=frame.instant(open_s - head_start_s(config.guests, config.speed, open_s)),
        anchor=time.time() + allowance,
        speed=config.speed,
    )
    suite = Suite(
        data_dir=data_dir,
        services=services,
        database_url=os.environ.get("DATABASE_URL") or None,
        clock=clock,
        ports=auto_ports() if args.auto_ports else None,
        venue_file=config.venue_file,
    )
    view.say(
        f"{venue.name}, {day.isoformat()}: starting {len(services)} services "
        f"({', '.join(services)}) at {config.speed:g}x, the clock starting in "
        f"{allowance:.0f} s; logs in {suite.log_dir}"
    )
    began = time.monotonic()
    signals = Signals.install(asyncio.get_running_loop())
    try:
        # Each service gets the whole start-up allowance to answer its health check:
        # on a loaded machine one service can take longer than the default minute.
        # A failed (or cancelled) start stops what did start.
        await suite.start(timeout=max(60.0, allowance))
    except asyncio.CancelledError:
        if signals.terminated:
            return 128 + signal.SIGTERM
        raise
    suite_start = time.monotonic() - began
    try:
        remember_day(data_dir, venue, day)
        admin = await suite.admin_token()
        running = {name for name, proc in suite.processes.items() if proc.running}
        play = signals.play = Day(config, venue, clock, suite.addresses, running, admin)
        with view:
            result = await play.play(view.update)
        if result.interrupted_at is not None:
            view.say(
                f"interrupted at {frame.label(result.interrupted_at)}: reporting the day so far"
            )
        result.phases["suite start"] = suite_start
        stopped = sorted(name for name, proc in suite.processes.items() if not proc.running)
        out = (args.out or ROOT / "runs").resolve() / datetime.now().strftime("%Y%m%d-%H%M%S")
        summary = write_report(
            result,
            out,
            wall_s=time.monotonic() - began,
            stopped=stopped,
            telemetry_dir=suite.telemetry_dir,
        )
    except asyncio.CancelledError:
        if not signals.terminated:
            raise
        view.say("terminated: stopping the suite and its database")
        return 128 + signal.SIGTERM
    finally:
        await suite.stop()
    view.say(summary)
    view.say(f"report: {out / 'report.md'}")
    failed = result.calls.total_failures
    return 1 if failed or stopped else 0

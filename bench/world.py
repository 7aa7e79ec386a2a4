"""The world's own cost: a whole default day (10,000 guests) played with no suite
attached, so that only the world's CPU is measured.

Figures: CPU seconds per venue hour, world events and device messages per CPU
second. Floor, measured in the same run: the bare event heap (push and pop of the
same number of events with a handler that does nothing), the least any
discrete-event world could spend. The bar: at the default 100x the world must
leave the machine to the suite, so it may use at most a tenth of one core, which
is 3.6 CPU seconds per venue hour.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from services.venue_model import load_venue
from sim.config import WorldConfig
from sim.day import offline_world
from sim.frame import DayFrame
from sim.geography import Heard
from sim.population import Member, Party
from sim.ports import Item, OfflineDevices

BUDGET_CPU_S_PER_VENUE_HOUR = 3.6


class Counting(OfflineDevices):
    """Counts what the devices would send."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def tap(self, party: Party, member: Member, access_point: str, t: float) -> None:
        self.sent["taps"] += 1

    def hear(self, party: Party, heard: tuple[Heard, ...], t: float) -> None:
        self.sent["reads"] += len(heard) * party.size

    def charge(
        self,
        party: Party,
        member: Member,
        merchant: str,
        till: str,
        items: tuple[Item, ...],
        t: float,
        pin: str | None,
        category: str,
    ) -> None:
        self.sent["charges"] += 1

    def capture(self, camera: str, capture_id: str, taken_s: float) -> None:
        self.sent["captures"] += 1


def heap_floor(events: int) -> float:
    """CPU seconds to push and pop `events` events through a bare heap."""

    def nothing() -> None:
        pass

    heap: list[tuple[float, int, Any]] = []
    began = time.process_time()
    for i in range(events):
        heapq.heappush(heap, (float(i % 9973), i, nothing))
        if len(heap) > 5000:
            heapq.heappop(heap)[2]()
    while heap:
        heapq.heappop(heap)[2]()
    return time.process_time() - began


async def run(work: Path, seconds: float) -> dict[str, Any]:
    config = WorldConfig()
    venue = load_venue(config.venue_file)
    world = offline_world(venue, config, DayFrame.of(date(2026, 7, 4), venue.timezone))
    devices = Counting()
    world.devices = devices
    world.start()
    began = time.process_time()
    world.engine.run_until(float("inf"))
    cpu = time.process_time() - began
    venue_hours = (world.engine.now - world.open_s) / 3600
    events = world.engine.handled
    floor_cpu = heap_floor(events)
    messages = sum(devices.sent.values())
    per_hour = cpu / venue_hours
    return {
        "guests": config.guests,
        "venue_hours": round(venue_hours, 2),
        "world_cpu_s": round(cpu, 2),
        "world_cpu_s_per_venue_hour": round(per_hour, 3),
        "world_events": events,
        "device_messages": dict(devices.sent),
        "world_events_per_cpu_s": round(events / cpu),
        "device_messages_per_cpu_s": round(messages / cpu),
        "floor_heap_cpu_s": round(floor_cpu, 3),
        "floor_heap_events_per_cpu_s": round(events / floor_cpu),
        "checks": {
            "world_vs_heap_floor_cpu": round(cpu / floor_cpu, 1),
            "cpu_s_per_venue_hour": round(per_hour, 3),
            "bar_at_most_3.6_cpu_s_per_venue_hour": per_hour <= BUDGET_CPU_S_PER_VENUE_HOUR,
        },
    }

"""What really happened: the world's own record, never sent to the suite.

The report compares it with what the twin said. Kept compact (tuples and arrays)
because a full day has tens of thousands of rides and millions of reads.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RideRecord:
    guest: int
    party: int
    attraction: str
    via_return: bool
    joined_s: float  # this guest's standby (or merge) tap
    boarded_s: float  # this guest's boarding tap
    # The posted wait the guest saw on the tip board when joining standby, and how
    # old that snapshot was; None when the twin posted no wait.
    posted_s: float | None
    posted_age_s: float | None
    archetype: str
    follows_app: bool
    uses_app: bool
    must: bool

    @property
    def wait_s(self) -> float:
        return self.boarded_s - self.joined_s


@dataclass(frozen=True, slots=True)
class CaptureTruth:
    capture_id: str
    camera: str
    attraction: str | None
    taken_s: float  # true venue time of the exposure
    guests: tuple[int, ...]  # everyone in the picture
    parties: tuple[int, ...]


@dataclass(slots=True)
class StatusSpan:
    status: str
    start_s: float
    end_s: float | None = None


@dataclass
class Truth:
    rides: list[RideRecord] = field(default_factory=list)
    abandoned: Counter[str] = field(default_factory=Counter)
    entries: list[tuple[float, int]] = field(default_factory=list)  # (time, guests)
    exits: list[tuple[float, int]] = field(default_factory=list)
    captures: dict[str, CaptureTruth] = field(default_factory=dict)
    purchases: list[tuple[float, int, str, int, str]] = field(default_factory=list)
    status: dict[str, list[StatusSpan]] = field(default_factory=lambda: defaultdict(list))
    # Zone occupancy samples: times, and one count per zone (in `zones` order).
    zones: list[str] = field(default_factory=list)
    occupancy_times: list[float] = field(default_factory=list)
    occupancy: list[list[int]] = field(default_factory=list)
    inside_times: list[float] = field(default_factory=list)
    inside: list[int] = field(default_factory=list)
    # Taps the world made, by kind of access point.
    taps: Counter[str] = field(default_factory=Counter)
    activities: Counter[str] = field(default_factory=Counter)
    arrived_parties: int = 0
    arrived_guests: int = 0
    left_guests: int = 0
    # Guests of each party who did each of their wishes (for must-do completion).
    wishes_done: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))

    # Where each party was: (times, zones) of every change of zone, as seen at the
    # moments its bands are read (about once a minute).
    trails: dict[int, tuple[list[float], list[str]]] = field(default_factory=dict)

    def was_in(self, party: int, zone: str, t: float) -> None:
        trail = self.trails.get(party)
        if trail is None:
            self.trails[party] = ([t], [zone])
        elif trail[1][-1] != zone:
            trail[0].append(t)
            trail[1].append(zone)

    def zone_at_read(self, party: int, read_s: float, skew_s: float) -> str:
        """The zone the party was in at the read the twin reports at `read_s`: a
        read's time is off by up to `skew_s` either way (reader clocks), and the
        party's reads are a ping period apart, so the read is the last one before
        `read_s + skew_s` - not the last before `read_s`, which for a read stamped
        early is the one before it."""
        return self.zone_at(party, read_s + skew_s)

    def zone_at(self, party: int, t: float) -> str:
        """The zone the party was in at `t`, as of its last read before; "" if none."""
        trail = self.trails.get(party)
        if trail is None:
            return ""
        i = bisect_right(trail[0], t) - 1
        return trail[1][i] if i >= 0 else ""

    def ride_done(self, record: RideRecord) -> None:
        self.rides.append(record)
        self.wishes_done[record.party].add(record.attraction)

"""Who comes today: parties with their members, habits, wishes and times.

Everything here is drawn from the venue's demand block and the seed before the day
starts, so the same seed always brings the same guests through the gates. What the
guests do once inside depends on what they meet (lines, breakdowns, the app).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from services.venue_model import AccessPointKind, Archetype, Venue
from sim.config import Shares

FIRST = (
    "Ava",
    "Ben",
    "Cleo",
    "Dan",
    "Ella",
    "Finn",
    "Gia",
    "Hugo",
    "Iris",
    "Jack",
    "Kai",
    "Lena",
    "Max",
    "Nora",
    "Owen",
    "Pia",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Vic",
    "Wes",
    "Yara",
)
LAST = (
    "Adams",
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fox",
    "Garcia",
    "Hill",
    "Ito",
    "Jones",
    "Kim",
    "Lopez",
    "Moss",
    "Novak",
    "Ortiz",
    "Patel",
    "Rossi",
    "Singh",
    "Tanaka",
    "Vega",
    "Wong",
)


@dataclass(frozen=True, slots=True)
class Consent:
    location: bool
    nudges: bool
    photos: bool


@dataclass(slots=True)
class Member:
    index: int  # the guest's number in the day, 0..guests-1
    party: int
    adult: bool
    name: str
    height_cm: int
    band_uid: str
    consent: Consent
    # Filled at the ticket desk from identity's replies.
    guest_id: str = ""


@dataclass(frozen=True, slots=True)
class Wish:
    attraction: str
    must: bool


@dataclass(slots=True)
class Party:
    index: int
    members: tuple[Member, ...]
    archetype: Archetype
    arrive_s: float
    leave_s: float
    walking_speed: float  # metres per second
    tolerance_s: float  # the longest posted wait they will join for a nice-to-do
    wishes: tuple[Wish, ...]
    meals_s: tuple[float, ...]
    uses_app: bool
    follows_app: bool
    books: bool
    hotel_room: str | None = None
    pin: str = ""
    # Filled at the ticket desk.
    party_id: str = ""
    app_token: str = ""
    registered: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def payer(self) -> Member:
        return self.members[0]

    @property
    def shortest_cm(self) -> int:
        return min(m.height_cm for m in self.members)


# Day seconds of a local minute of day (DayFrame.at_clock).
ClockOf = Callable[[float], float]


def _weights(values: list[float]) -> np.ndarray:
    w = np.asarray(values, dtype=float)
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def arrival_times(
    venue: Venue,
    count: int,
    start_s: float,
    end_s: float,
    rng: np.random.Generator,
    clock: ClockOf,
) -> np.ndarray:
    """`count` arrival instants: hours by the demand curve, Poisson within the hour
    (uniform order statistics, given the hour's count), inside [start_s, end_s)."""
    hours = [h for h in venue.demand.arrivals_by_hour]
    spans: list[tuple[float, float, float]] = []
    for h in hours:
        lo = max(clock(h.hour * 60), start_s)
        hi = min(clock((h.hour + 1) * 60), end_s)
        if hi > lo:
            spans.append((lo, hi, h.weight * (hi - lo) / 3600.0))
    if not spans:
        spans = [(start_s, end_s, 1.0)]
    counts = rng.multinomial(count, _weights([s[2] for s in spans]))
    times = np.concatenate(
        [rng.uniform(lo, hi, n) for (lo, hi, _), n in zip(spans, counts, strict=True)]
    )
    return np.sort(times)


def generate(
    venue: Venue,
    guests: int,
    rng: np.random.Generator,
    shares: Shares,
    run_tag: str,
    clock: ClockOf,
    start_s: float,
    end_s: float,
    close_s: float,
) -> list[Party]:
    """The day's parties, `guests` members in all, in order of arrival."""
    demand = venue.demand
    sizes_p = _weights([p.weight for p in demand.party_sizes])
    size_values = [p.size for p in demand.party_sizes]
    sizes: list[int] = []
    while sum(sizes) < guests:
        sizes.append(int(rng.choice(size_values, p=sizes_p)))
    if sizes:
        sizes[-1] -= sum(sizes) - guests
    arrivals = arrival_times(venue, len(sizes), start_s, end_s, rng, clock)
    arch_p = _weights([a.weight for a in demand.archetypes])
    meal_windows = (
        (clock(11 * 60 + 30), clock(13 * 60 + 30)),
        (clock(17 * 60 + 30), clock(19 * 60 + 30)),
    )
    parties: list[Party] = []
    first_guest = 0
    for index, (size, arrive) in enumerate(zip(sizes, arrivals, strict=True)):
        arch = demand.archetypes[int(rng.choice(len(demand.archetypes), p=arch_p))]
        members = _members(rng, shares, run_tag, index, size, first_guest)
        first_guest += size
        shortest = min(m.height_cm for m in members)
        stay = arch.stay_minutes * 60 * float(rng.lognormal(0.0, 0.25))
        leave = min(float(arrive) + max(stay, 20 * 60), close_s)
        speed = float(np.clip(rng.normal(1.25, 0.18), 0.7, 1.8))
        uses_app = bool(rng.random() < shares.app)
        parties.append(
            Party(
                index=index,
                members=members,
                archetype=arch,
                arrive_s=float(arrive),
                leave_s=leave,
                walking_speed=speed * (0.85 if shortest < 120 else 1.0),
                tolerance_s=arch.max_wait_minutes * 60 * float(rng.lognormal(0.0, 0.3)),
                wishes=_wishes(venue, rng, arch, shortest, leave - float(arrive)),
                meals_s=_meals(rng, meal_windows, float(arrive), leave),
                uses_app=uses_app,
                follows_app=uses_app and bool(rng.random() < shares.follow),
                books=uses_app and bool(rng.random() < shares.book),
                pin=f"{int(rng.integers(0, 10_000)):04d}",
            )
        )
    _hotel_guests(venue, rng, parties, start_s)
    return parties


def _members(
    rng: np.random.Generator, shares: Shares, run_tag: str, party: int, size: int, first: int
) -> tuple[Member, ...]:
    """Adults first (the first one pays and carries the app), then children.
    Children take the consent choices of the adult who registers them."""
    adults = 1 if size == 1 else (2 if size <= 4 or rng.random() < 0.7 else 3)
    if size == 2 and rng.random() < 0.25:
        adults = 1
    surname = LAST[int(rng.integers(len(LAST)))]
    lead = _consent(rng, shares)
    members: list[Member] = []
    for m in range(size):
        adult = m < adults
        height = int(np.clip(rng.normal(170, 9), 150, 200)) if adult else int(rng.integers(88, 152))
        members.append(
            Member(
                index=first + m,
                party=party,
                adult=adult,
                name=f"{FIRST[int(rng.integers(len(FIRST)))]} {surname}",
                height_cm=height,
                band_uid=f"{run_tag}-{party:05d}-{m}",
                consent=_consent(rng, shares) if adult and m > 0 else lead,
            )
        )
    return tuple(members)


def _consent(rng: np.random.Generator, shares: Shares) -> Consent:
    return Consent(
        bool(rng.random() < shares.location_consent),
        bool(rng.random() < shares.nudge_consent),
        bool(rng.random() < shares.photo_consent),
    )


def _wishes(
    venue: Venue, rng: np.random.Generator, arch: Archetype, shortest_cm: int, stay_s: float
) -> tuple[Wish, ...]:
    """Rides everyone in the party is tall enough for, drawn by popularity; the first
    third are must-dos. Keen riders with long days want more of them."""
    popularity = {p.attraction: p.weight for p in venue.demand.popularity}
    rideable = [
        a
        for a in venue.attractions()
        if a.queue is not None
        and (a.queue.min_height_cm is None or a.queue.min_height_cm <= shortest_cm)
    ]
    if not rideable:
        return ()
    wanted = arch.attraction_preference * stay_s / 60 / 45
    n = int(np.clip(round(wanted * rng.uniform(0.7, 1.3)), 1, len(rideable)))
    p = _weights([popularity.get(a.id, 0.2) for a in rideable])
    picks = rng.choice(len(rideable), size=n, replace=False, p=p)
    musts = max(1, math.ceil(n / 3))
    return tuple(Wish(rideable[int(i)].id, rank < musts) for rank, i in enumerate(picks))


def _meals(
    rng: np.random.Generator,
    windows: tuple[tuple[float, float], ...],
    arrive: float,
    leave: float,
) -> tuple[float, ...]:
    """Lunch and dinner for those in the venue at meal times (longer stays eat more)."""
    meals: list[float] = []
    p_meal = min(0.9, (leave - arrive) / (300 * 60))
    for lo, hi in windows:
        start = max(lo, arrive + 30 * 60)
        if hi > start and leave > hi - 30 * 60 and rng.random() < p_meal:
            meals.append(float(rng.uniform(start, hi)))
    return tuple(meals)


def _hotel_guests(
    venue: Venue, rng: np.random.Generator, parties: list[Party], start_s: float
) -> None:
    """A few early parties slept at the venue's hotel (a park with gates and rooms)."""
    rooms = [room.id for hotel in venue.hotels() if hotel.hotel for room in hotel.hotel.rooms]
    if not rooms or not venue.access_points_of_kind(AccessPointKind.PARK_ENTRY):
        return
    early = [p for p in parties if p.arrive_s < start_s + 2 * 3600]
    if not early:
        return
    picks = rng.choice(len(early), size=min(len(rooms), len(early)), replace=False)
    for room, i in zip(rooms, sorted(int(x) for x in picks), strict=False):
        early[i].hotel_room = room

"""An attraction's real line: FIFO standby, a return-time / virtual-queue line that
merges at boarding, and vehicles that leave on the ride's cycle.

Pure and clock-free: the world asks `due(now)` when the next vehicle can leave and
calls `dispatch(t)` then. Vehicles hold `capacity` riders; a party bigger than a
vehicle is split over consecutive vehicles, and a party that does not fit the seats
left waits for the next one while the loader fills the gap with one of the next few
parties that fits, as ride operators do ("how many in your party?").
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

# A rider must be at the boarding point this long before the vehicle leaves
# (they tap their band and sit down).
BOARD_LEAD_S = 2.0
# How many parties behind the head the loader looks at to fill empty seats.
LOOKAHEAD = 3


class Status(Enum):
    OPEN = "open"
    DOWN = "down"
    CLOSED = "closed"


@dataclass(slots=True)
class Rider:
    """Some members of one party in a line."""

    party: Any
    members: tuple[int, ...]  # positions in the party's member tuple
    joined_s: float  # when they entered the line (standby or merge tap)
    ready_s: float  # when they can reach the boarding point
    via_return: bool

    @property
    def count(self) -> int:
        return len(self.members)


class Line:
    def __init__(
        self,
        attraction: str,
        capacity: int,
        interval_s: float,
        ride_s: float,
        return_share: float,
    ) -> None:
        if capacity < 1 or interval_s <= 0:
            raise ValueError("a ride needs seats and a cycle")
        self.attraction = attraction
        self.capacity = capacity
        self.interval_s = interval_s
        self.ride_s = ride_s
        self.return_quota = max(1, math.ceil(return_share * capacity)) if return_share else 0
        self.status = Status.OPEN
        self.standby_open = True
        self.standby: deque[Rider] = deque()
        self.returns: deque[Rider] = deque()
        self.last_dispatch_s: float | None = None
        self.dispatches = 0
        self.boarded = 0
        self.scheduled_s: float | None = None

    # --- joining and leaving -------------------------------------------------

    def join(self, rider: Rider) -> None:
        (self.returns if rider.via_return else self.standby).append(rider)

    def leave(self, party: Any) -> list[Rider]:
        """Take a party out of the line (they gave up); returns what was removed."""
        gone = [r for r in self.standby if r.party is party] + [
            r for r in self.returns if r.party is party
        ]
        if gone:
            self.standby = deque(r for r in self.standby if r.party is not party)
            self.returns = deque(r for r in self.returns if r.party is not party)
        return gone

    @property
    def standby_guests(self) -> int:
        return sum(r.count for r in self.standby)

    @property
    def return_guests(self) -> int:
        return sum(r.count for r in self.returns)

    def waiting(self) -> bool:
        return bool(self.standby or self.returns)

    # --- the ride's cycle ------------------------------------------------------

    def due(self, now: float) -> float | None:
        """When the next vehicle can leave with someone on it, or None."""
        if self.status is not Status.OPEN or not self.waiting():
            return None
        heads = [q[0].ready_s for q in (self.standby, self.returns) if q]
        earliest = max(now, min(heads) + BOARD_LEAD_S)
        if self.last_dispatch_s is None:
            return earliest
        # Vehicles keep cycling while the ride runs: the next free one leaves on a
        # multiple of the interval after the last.
        cycles = max(1, math.ceil((earliest - self.last_dispatch_s) / self.interval_s - 1e-9))
        return self.last_dispatch_s + cycles * self.interval_s

    def dispatch(self, t: float) -> list[Rider]:
        """Load one vehicle leaving at `t`; returns who boarded (never more than it holds)."""
        if self.status is not Status.OPEN:
            return []
        seats = self.capacity
        loaded: list[Rider] = []
        # A hair of slack: `due` added the lead to a ready time, and floats round.
        ready_by = t - BOARD_LEAD_S + 1e-6
        if self.returns and self.return_quota:
            seats -= self._fill(self.returns, min(seats, self.return_quota), ready_by, loaded)
        seats -= self._fill(self.standby, seats, ready_by, loaded)
        if seats and self.returns:
            seats -= self._fill(self.returns, seats, ready_by, loaded)
        if loaded:
            self.last_dispatch_s = t
            self.dispatches += 1
            self.boarded += self.capacity - seats
        return loaded

    def _fill(self, queue: deque[Rider], seats: int, ready_by: float, out: list[Rider]) -> int:
        taken = 0
        while queue and taken < seats:
            head = queue[0]
            if head.ready_s > ready_by:
                break
            free = seats - taken
            if head.count <= free:
                out.append(queue.popleft())
                taken += head.count
                continue
            if taken == 0:
                # Bigger than a whole vehicle: the first members go now, the rest next.
                out.append(
                    Rider(
                        head.party,
                        head.members[:free],
                        head.joined_s,
                        head.ready_s,
                        head.via_return,
                    )
                )
                head.members = head.members[free:]
                taken += free
                break
            # Fill the gap with one of the next few parties that fits and is there.
            for i in range(1, min(LOOKAHEAD + 1, len(queue))):
                other = queue[i]
                if other.count <= free and other.ready_s <= ready_by:
                    del queue[i]
                    out.append(other)
                    taken += other.count
                    break
            break
        return taken

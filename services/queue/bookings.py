"""Rules of return-time windows and virtual queues. Pure.

Return-time windows are the venue's slot length, laid from the attraction's
opening. Each holds at most the venue's return share of what the ride really
loads in that time (its learned throughput, never above the nameplate): a
park that sized its passes from a guessed capacity opened with six-hour
virtual waits, and standby guests paid for it.

A virtual queue hands out boarding groups of about five minutes' worth of the
return share each, and calls them in order at that rate while the ride runs;
a called group gets a window of the venue's slot length to come.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from venue.queue.v1 import queue_pb2 as pb

VIRTUAL_QUEUE = pb.BOOKING_KIND_VIRTUAL_QUEUE
RETURN_TIME = pb.BOOKING_KIND_RETURN_TIME

WAITING = pb.BOOKING_STATUS_WAITING
CALLED = pb.BOOKING_STATUS_CALLED
CONFIRMED = pb.BOOKING_STATUS_CONFIRMED
REDEEMED = pb.BOOKING_STATUS_REDEEMED
CANCELLED = pb.BOOKING_STATUS_CANCELLED
EXPIRED = pb.BOOKING_STATUS_EXPIRED

ACTIVE = frozenset({WAITING, CALLED, CONFIRMED})
# Bookings that hold (or held) a place in a window's capacity.
HOLDING = frozenset({CALLED, CONFIRMED, REDEEMED})

# Seconds of the return share one virtual-queue group stands for.
GROUP_SECONDS = 300.0
# A window may be booked while at least this share of it is still ahead.
BOOKABLE_REMAINDER = 0.25
MAX_PARTY = 20


@dataclass(frozen=True, slots=True, order=True)
class Window:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def return_windows(opens_at: float, closes_at: float, slot_minutes: int) -> list[Window]:
    """The day's windows, from opening; the last one ends at closing."""
    length = slot_minutes * 60.0
    windows: list[Window] = []
    start = opens_at
    while start < closes_at - 1e-6:
        windows.append(Window(start, min(start + length, closes_at)))
        start += length
    return windows


def window_capacity(
    throughput_per_hour: float, nameplate_per_hour: float, share: float, window: Window
) -> int:
    """Guests a window may hold: the return share of what the ride loads in it."""
    rate = max(min(throughput_per_hour, nameplate_per_hour), 0.0)
    return math.floor(rate * share * window.seconds / 3600.0 + 1e-9)


def bookable(window: Window, now: float) -> bool:
    """Enough of the window is still ahead for a guest to make use of it."""
    ahead = window.end - max(now, window.start)
    return ahead >= BOOKABLE_REMAINDER * window.seconds


def admit(booked: int, party: int, capacity: int) -> bool:
    """A party fits in a window with `booked` guests already in it."""
    return party > 0 and booked + party <= capacity


def holdings_violation(
    guests: list[str], held: dict[str, int], here: set[str], max_holdings: int
) -> tuple[str, str] | None:
    """(guest, why) for the first guest who may not take another booking."""
    for guest in guests:
        if guest in here:
            return guest, "already holds a booking for this attraction"
        if held.get(guest, 0) >= max_holdings:
            return guest, f"already holds {max_holdings} bookings, the venue's limit"
    return None


def group_size(throughput_per_hour: float, nameplate_per_hour: float, share: float) -> int:
    rate = max(min(throughput_per_hour, nameplate_per_hour), 0.0)
    return max(1, round(rate * share * GROUP_SECONDS / 3600.0))


def assign_group(
    next_group: int, next_group_guests: int, party: int, size: int, last_called: int = 0
) -> tuple[int, int, int]:
    """(group for the party, next group, guests in it): a party is never split,
    a group is closed once full, and a group already called takes nobody more
    (its call has gone out: a guest put in it would never be called)."""
    if next_group <= last_called:
        next_group, next_group_guests = last_called + 1, 0
    if next_group_guests > 0 and next_group_guests + party > size:
        next_group += 1
        next_group_guests = 0
    return next_group, next_group, next_group_guests + party


def call_rate(
    throughput_per_hour: float, nameplate_per_hour: float, share: float, return_rate: float
) -> float:
    """Virtual-queue guests to call per second: the return share of the ride,
    less what return-time bookings already bring (guests per second)."""
    rate = max(min(throughput_per_hour, nameplate_per_hour), 0.0) * share / 3600.0
    return max(rate - return_rate, rate * 0.1)


def cancellable(status: int) -> bool | None:
    """True: cancel it; False: already cancelled (nothing to do); None: too late."""
    if status in ACTIVE:
        return True
    if status == CANCELLED:
        return False
    return None


def expired_status(any_redeemed: bool) -> int:
    """A window that passed: used by some of its guests, or not at all."""
    return REDEEMED if any_redeemed else EXPIRED

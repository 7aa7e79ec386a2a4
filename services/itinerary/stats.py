"""The ops view's per-guest figures: pure."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime

from services.itinerary.model import HOUR, SERVICE_KINDS


def per_guest(sends: Iterable[tuple[str, datetime, int]]) -> tuple[float, int]:
    """(median nudges per guest per hour, most budgeted nudges any guest got in
    any 60-minute window), over guests who received any.

    A guest's rate is their nudges over the time from their first to their last
    one, at least an hour: it leaves out their quiet hours at either end, so it
    reads high rather than low. The maximum counts only nudges within the
    attention budget (a boarding call is a service message the guest asked
    for), so it is the figure to hold against the venue's budget.
    """
    by_guest: dict[str, list[tuple[datetime, int]]] = {}
    for guest, at, kind in sends:
        by_guest.setdefault(guest, []).append((at, kind))
    if not by_guest:
        return 0.0, 0
    rates: list[float] = []
    most = 0
    for items in by_guest.values():
        items.sort()
        span = max((items[-1][0] - items[0][0]) / HOUR, 1.0)
        rates.append(len(items) / span)
        budgeted = [at for at, kind in items if kind not in SERVICE_KINDS]
        start = 0
        for end, at in enumerate(budgeted):
            while at - budgeted[start] >= HOUR:
                start += 1
            most = max(most, end - start + 1)
    return float(statistics.median(rates)), most

"""What the hardening tests need to know per service, beyond its descriptors and
policy: a small table, so that a service that lands is covered by adding a row
(or by nothing at all when the defaults fit)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expectations:
    # Tables background tasks write (event consumers, cursors): a refused call's
    # "nothing written" check ignores them because another service's events may
    # land in them at any moment.
    background_tables: frozenset[str] = frozenset()


DEFAULT = Expectations(frozenset({"stream_cursors"}))

TABLE: dict[str, Expectations] = {
    "identity": DEFAULT,
    "access": Expectations(frozenset({"stream_cursors", "holders"})),
    # The minute-by-minute occupancy roll-up and the wait sampler run on timers.
    "location": Expectations(frozenset({"stream_cursors", "occupancy_minutes"})),
    "queue": Expectations(frozenset({"stream_cursors", "wait_samples"})),
    # Photo's guests mirror identity's stream (consent, party, erasure): the
    # guests other tests register arrive there whenever identity's events do.
    "photo": Expectations(frozenset({"stream_cursors", "guests"})),
}


def expectations(service: str) -> Expectations:
    return TABLE.get(service, DEFAULT)

"""Placement: which zone each guest is in, from the reads of their band.

Every guest has a slot: a row in a set of numpy arrays. Ingest feeds whole
batches of reads at once (`observe`); a periodic `tick` turns what changed into
zone moves and zone counts. No I/O here and no clock: times come in as venue
Unix milliseconds.

The rule. A read scores `rssi + DECAY * observed_at`: of two reads, the newer
wins unless the older one is stronger by more than DECAY dB per second between
them (10 dB/s: a read 2 s older must be 20 dB stronger). The guest is placed by
the reader of their best-scoring read. Because the best read is a maximum, the
result does not depend on the order reads arrive in, a late read counts for
exactly what it is worth, and a batch applied twice changes nothing.

A guest not heard for `lost_after` is counted nowhere; from an exit zone (an
entrance plaza) that happens after the shorter `exit_after`, and they are taken
to have left the venue.

Consent. Every guest is counted, but only a guest whose location consent
covers their best read is ever shown (`shown_zone`, moves): `consent_since`
is the venue time consent was given (0: always; NEVER: not given).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.location.topology import Topology

# Milli-dB per millisecond of age: 10 dB per second.
DECAY_PER_MS = 10
MILLI_DB = 1000
NO_SCORE = np.iinfo(np.int64).min
NEVER = np.iinfo(np.int64).max
NOWHERE = -1

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I16 = npt.NDArray[np.int16]
Bools = npt.NDArray[np.bool_]


# Equal scores from different readers are broken by reader number, so that the
# result never depends on arrival order (room for 65,536 readers).
TIE_BITS = 16


def score(at_ms: I64, rssi_dbm: npt.NDArray[np.integer], readers: npt.NDArray[np.integer]) -> I64:
    strength = at_ms * DECAY_PER_MS + rssi_dbm.astype(np.int64) * MILLI_DB
    return (strength << TIE_BITS) + readers.astype(np.int64)


class GuestArrays:
    """One row per guest slot, grown by doubling."""

    FIELDS: tuple[tuple[str, type, int | bool], ...] = (
        ("consent_since", np.int64, NEVER),
        ("countable", np.bool_, False),
        ("best_score", np.int64, NO_SCORE),
        ("best_reader", np.int32, -1),
        ("best_at", np.int64, 0),
        ("last_heard", np.int64, 0),
        ("zone", np.int16, NOWHERE),
        ("shown_zone", np.int16, NOWHERE),
        ("exited", np.bool_, False),
        ("dirty", np.bool_, False),
        # Ping storage: the guest's current track number (0: none yet), and a
        # counter of consent changes so a track allocated across one is dropped.
        ("track", np.int32, 0),
        ("epoch", np.int32, 0),
    )

    consent_since: I64
    countable: Bools
    best_score: I64
    best_reader: I32
    best_at: I64
    last_heard: I64
    zone: I16
    shown_zone: I16
    exited: Bools
    dirty: Bools
    track: I32
    epoch: I32

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        self.capacity = capacity
        for name, dtype, initial in self.FIELDS:
            setattr(self, name, np.full(capacity, initial, dtype=dtype))

    def add(self) -> int:
        if self.size == self.capacity:
            self._grow(self.capacity * 2)
        slot = self.size
        self.size += 1
        return slot

    def _grow(self, capacity: int) -> None:
        for name, dtype, initial in self.FIELDS:
            old = getattr(self, name)
            new: npt.NDArray[np.generic] = np.full(capacity, initial, dtype=dtype)
            new[: self.capacity] = old
            setattr(self, name, new)
        self.capacity = capacity


@dataclass(frozen=True, slots=True)
class Move:
    """A consenting guest's shown zone changed (either side may be NOWHERE)."""

    slot: int
    from_zone: int
    to_zone: int
    # Reader whose read placed the guest (-1 when to_zone is NOWHERE).
    reader: int
    at_ms: int
    # Unplaced from an exit zone: taken to have left the venue.
    exited: bool


@dataclass(frozen=True, slots=True)
class TickResult:
    moves: list[Move]
    # Guests per zone, nested zones included.
    counts: I64
    # Guests counted in some zone.
    placed: int


class Placement:
    def __init__(
        self,
        topology: Topology,
        lost_after_ms: int,
        exit_after_ms: int,
        guests: GuestArrays | None = None,
    ) -> None:
        self.topology = topology
        self.guests = guests or GuestArrays()
        # How long a guest last placed in each zone stays counted unheard.
        self._lost_ms = np.where(topology.is_exit, exit_after_ms, lost_after_ms).astype(np.int64)
        self._empty = np.zeros(topology.zone_count, dtype=np.int64)

    # --- reads ------------------------------------------------------------------

    def observe(self, slots: I64, readers: I32, at_ms: I64, rssi_dbm: I32) -> None:
        """Take valid reads (any order, any repetition) into account."""
        g = self.guests
        keep = g.countable[slots]
        if not keep.all():
            slots, readers, at_ms, rssi_dbm = (
                slots[keep],
                readers[keep],
                at_ms[keep],
                rssi_dbm[keep],
            )
        if slots.size == 0:
            return
        scores = score(at_ms, rssi_dbm, readers)
        before = g.best_score[slots]
        np.maximum.at(g.best_score, slots, scores)
        wins = (scores == g.best_score[slots]) & (scores > before)
        winners = slots[wins]
        g.best_reader[winners] = readers[wins]
        g.best_at[winners] = at_ms[wins]
        g.dirty[winners] = True
        np.maximum.at(g.last_heard, slots, at_ms)

    # --- guests changing outside reads --------------------------------------------

    def unplace(self, slot: int, silently: bool) -> None:
        """Count the guest nowhere from now. `silently`: the guest is no longer
        shown either (consent withdrawn, erased), so no move is reported."""
        g = self.guests
        g.zone[slot] = NOWHERE
        g.best_score[slot] = NO_SCORE
        g.dirty[slot] = False
        if silently:
            g.shown_zone[slot] = NOWHERE

    def restore(self, slot: int, zone: int, reader: int, at_ms: int, now_ms: int) -> None:
        """Put back a consenting guest's stored place after a restart. They stay
        counted until unheard for lost_after from now, unless reads say otherwise."""
        g = self.guests
        g.zone[slot] = zone
        g.shown_zone[slot] = zone
        g.best_reader[slot] = reader
        g.best_at[slot] = at_ms
        g.last_heard[slot] = max(int(g.last_heard[slot]), now_ms)

    # --- the tick -------------------------------------------------------------------

    def tick(self, now_ms: int) -> TickResult:
        g = self.guests
        n = g.size
        zone = g.zone[:n]
        last_heard = g.last_heard[:n]

        # Guests with a new best read go to its reader's zone, unless that read
        # is too old to count (a late read for a guest already lost).
        fresh = np.flatnonzero(g.dirty[:n])
        if fresh.size:
            g.dirty[fresh] = False
            target = self.topology.reader_zone[g.best_reader[fresh]].astype(np.int16)
            stale = last_heard[fresh] < now_ms - self._lost_ms[target]
            target[stale] = NOWHERE
            zone[fresh] = target

        # Guests unheard for too long are counted nowhere.
        placed = zone >= 0
        limit = now_ms - self._lost_ms[np.where(placed, zone, 0)]
        lost = np.flatnonzero(placed & (last_heard < limit))
        exits = np.zeros(0, dtype=np.intp)
        if lost.size:
            exits = lost[self.topology.is_exit[zone[lost]]]
            zone[lost] = NOWHERE
            g.best_score[lost] = NO_SCORE
            placed[lost] = False
        g.exited[exits] = True
        g.exited[fresh[zone[fresh] >= 0]] = False

        counts = np.bincount(zone[placed], minlength=self.topology.zone_count)
        rolled = counts @ self.topology.rollup if counts.any() else self._empty.copy()
        return TickResult(self._moves(n, now_ms), rolled, int(counts.sum()))

    def _moves(self, n: int, now_ms: int) -> list[Move]:
        g = self.guests
        zone = g.zone[:n]
        consented = g.consent_since[:n] <= g.best_at[:n]
        shown = np.where(consented & (zone >= 0), zone, NOWHERE).astype(np.int16)
        changed = np.flatnonzero(shown != g.shown_zone[:n])
        moves: list[Move] = []
        for slot in changed.tolist():
            to_zone = int(shown[slot])
            placed = to_zone != NOWHERE
            moves.append(
                Move(
                    slot=slot,
                    from_zone=int(g.shown_zone[slot]),
                    to_zone=to_zone,
                    reader=int(g.best_reader[slot]) if placed else -1,
                    at_ms=int(g.best_at[slot]) if placed else now_ms,
                    exited=bool(g.exited[slot]) and not placed,
                )
            )
        g.shown_zone[changed] = shown[changed]
        return moves

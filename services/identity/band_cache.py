"""The ResolveBand cache: every scanner's hot path answered from memory.

Entries are dropped by every event that could change an answer (a band linked or
deactivated, consent or a guest changed, a guest erased), both synchronously by
the process that made the change and from the event stream for the others. A
fill that raced with an invalidation is discarded (the generation check), so
a deactivation can never be undone by a slow read.
"""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")

_MISSING = object()


class BandCache(Generic[V]):
    def __init__(self, max_entries: int = 200_000) -> None:
        self._by_uid: dict[str, V | None] = {}
        self._uids_of_guest: dict[str, set[str]] = {}
        self._max = max_entries
        self._generation = 0

    def __len__(self) -> int:
        return len(self._by_uid)

    def get(self, uid: str) -> tuple[bool, V | None]:
        """(hit, value); a hit with None means "known not to exist"."""
        value = self._by_uid.get(uid, _MISSING)
        if value is _MISSING:
            return False, None
        return True, value  # type: ignore[return-value]

    @property
    def generation(self) -> int:
        return self._generation

    def fill(self, uid: str, guest_id: str | None, value: V | None, generation: int) -> None:
        """Cache a value read from the database when the read began at `generation`."""
        if generation != self._generation:
            return
        if len(self._by_uid) >= self._max:
            self.clear()
        self._by_uid[uid] = value
        if guest_id is not None:
            self._uids_of_guest.setdefault(guest_id, set()).add(uid)

    def invalidate_uid(self, uid: str) -> None:
        self._generation += 1
        self._by_uid.pop(uid, None)

    def invalidate_guest(self, guest_id: str) -> None:
        self._generation += 1
        for uid in self._uids_of_guest.pop(guest_id, ()):
            self._by_uid.pop(uid, None)

    def clear(self) -> None:
        self._generation += 1
        self._by_uid.clear()
        self._uids_of_guest.clear()

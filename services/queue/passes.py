"""Keeps each booking's passes in access in step with the booking: issued when
booked, given their window when a virtual-queue group is called, revoked when
a booking ends early.

The booking is the truth and is committed first; its passes follow. A write
that fails because access is down stays pending and is retried (in order of
fewest attempts) until it lands, with the same idempotency key, so access
never holds two passes for one guest's booking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.queue.access_client import AccessClient, AccessRefused, AccessUnavailable
from services.queue.store import (
    PASS_TO_ISSUE,
    PASS_TO_REVOKE,
    PASS_TO_UPDATE,
    PendingPass,
    QueueStore,
)

log = logging.getLogger("venue.queue.passes")


class PassKeeper:
    def __init__(self, store: QueueStore, access: AccessClient, interval: float = 2.0) -> None:
        self._store = store
        self._access = access
        self._interval = interval
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def sync(self, booking_id: str | None = None, limit: int = 50) -> bool:
        """Write what is pending (of one booking, or any). False if access is down.

        One booking's passes (a guest each) go to access at once: the guest who
        booked is waiting for the reply. The keeper's catch-up goes one by one and
        stops at the first sign access is down."""
        pending = await self._store.pending_passes(limit, booking_id)
        if booking_id is not None:
            return all(await asyncio.gather(*(self._write(p) for p in pending)))
        for p in pending:
            if not await self._write(p):
                return False
        return True

    async def _write(self, p: PendingPass) -> bool:
        """One pass write; False when access is down (the pass stays pending)."""
        try:
            if p.pass_state == PASS_TO_ISSUE:
                entitlement_id = await self._access.issue(p)
                await self._store.pass_done(p.booking_id, p.guest_id, p.pass_state, entitlement_id)
            elif p.pass_state == PASS_TO_UPDATE:
                await self._access.send_window(p)
                await self._store.pass_done(p.booking_id, p.guest_id, p.pass_state, None)
            elif p.pass_state == PASS_TO_REVOKE:
                await self._access.revoke(p)
                await self._store.pass_done(p.booking_id, p.guest_id, p.pass_state, None)
        except AccessUnavailable as err:
            await self._store.pass_failed(p.booking_id, p.guest_id, refused=False)
            log.info("access unavailable; pass stays pending", extra={"code": str(err)})
            return False
        except AccessRefused as err:
            await self._store.pass_failed(p.booking_id, p.guest_id, refused=True)
            log.warning(
                "access refused a pass",
                extra={"booking_id": p.booking_id, "guest_id": p.guest_id, "code": err.code.name},
            )
        return True

    async def run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            self._wake.clear()
            try:
                reachable = await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("pass sync failed", exc_info=True)
                reachable = False
            backoff = self._interval if reachable else min(backoff * 2, 30.0)

"""Photo's background upkeep, on venue time: retention, forgetting old boarding
taps and photographer sessions, finishing purchases nobody retried, and
refunding photos bought through a link that was later taken back."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from services.photo.catalog import Catalog
from services.photo.purchases import Purchases
from services.photo.store import PhotoStore
from services.photo.telemetry import PhotoMetrics
from services.platform.clock import VenueClock
from services.platform.errors import Unavailable

log = logging.getLogger("venue.photo.upkeep")

# Boarding taps and sessions are kept this long (the linker needs hours at most).
EVIDENCE_KEPT = timedelta(days=2)
# How often upkeep runs, in venue time (and within these wall-time bounds).
EVERY = timedelta(minutes=5)
MIN_WALL, MAX_WALL = 1.0, 60.0


async def upkeep_once(
    store: PhotoStore,
    purchases: Purchases,
    catalog: Catalog,
    clock: VenueClock,
    telemetry: PhotoMetrics | None = None,
) -> int:
    """One pass; returns the number of photos deleted."""
    now = clock.now()
    deleted = 0
    while True:
        batch = await store.delete_expired(now - catalog.retention)
        deleted += batch
        if batch < 1000:
            break
    await store.forget_old(now - EVIDENCE_KEPT)
    await purchases.resume_pending(now)
    try:
        await purchases.refund_superseded()
    except Unavailable:
        log.info("superseded purchases wait for payments")
    if telemetry is not None:
        telemetry.captures("deleted", deleted)
    if deleted:
        log.info("photos past retention deleted", extra={"photos": deleted})
    return deleted


async def run_upkeep(
    store: PhotoStore,
    purchases: Purchases,
    catalog: Catalog,
    clock: VenueClock,
    telemetry: PhotoMetrics | None = None,
) -> None:
    wall = min(max(clock.wall_seconds(EVERY.total_seconds()), MIN_WALL), MAX_WALL)
    while True:
        try:
            await upkeep_once(store, purchases, catalog, clock, telemetry)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("photo upkeep failed; retrying", exc_info=True)
        await asyncio.sleep(wall)

"""Buying a photo, or a party's photos of a day, through the access wallet.

A purchase is written as pending (with the charge's key and time) before the
charge and finished after it, outside any open transaction. A retry with the
same key resumes the same purchase and re-sends the same charge, which access
applies once; a pending purchase nobody retried is finished by the upkeep job.
Only one purchase of a photo (or of a day's package) per party can be under way
or done, so two keys cannot pay twice for the same thing.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, datetime, timedelta

from services.photo import messages
from services.photo.catalog import Catalog
from services.photo.payments import PaymentError, Payments
from services.photo.records import PURCHASE_PENDING, PurchaseRecord
from services.photo.store import PhotoStore
from services.platform.clock import VenueClock
from services.platform.errors import Unavailable
from services.platform.events import EventHub
from venue.photo.v1 import photo_pb2 as pb

log = logging.getLogger("venue.photo.purchases")

PHOTO_SKU = "ride-photo"
PACKAGE_SKU = "photo-package"
# A purchase whose charge could not be finished is given up after this long.
GIVE_UP = timedelta(days=1)


def charge_key(scope: str, key: str) -> str:
    """The key photo gives access: unique per caller and app key, and stable."""
    return "photo-" + hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()[:48]


class Purchases:
    def __init__(
        self,
        store: PhotoStore,
        payments: Payments,
        catalog: Catalog,
        clock: VenueClock,
        hub: EventHub,
    ) -> None:
        self._store = store
        self._payments = payments
        self._catalog = catalog
        self._clock = clock
        self._hub = hub

    async def buy(
        self,
        *,
        scope: str,
        key: str,
        digest: bytes,
        party_id: str,
        guest_id: str,
        photo_id: str | None,
        package_date: date | None,
        price_minor: int,
    ) -> pb.PhotoPurchase:
        record = await self._store.begin_purchase(
            scope=scope,
            key=key,
            digest=digest,
            party_id=party_id,
            guest_id=guest_id,
            photo_id=photo_id,
            package_date=package_date,
            price_minor=price_minor,
            currency=self._catalog.currency,
            charge_key=charge_key(scope, key),
            now=self._clock.now(),
        )
        if record.state == PURCHASE_PENDING:
            record = await self._complete(record)
        return messages.purchase_pb(record)

    async def _complete(self, record: PurchaseRecord) -> PurchaseRecord:
        if record.guest_id is None:
            # The buyer was erased before the charge went through.
            return await self._store.finish_purchase(
                record.purchase_id,
                False,
                "",
                pb.PURCHASE_DECLINE_REASON_OTHER,
                messages.decline_text(pb.PURCHASE_DECLINE_REASON_OTHER),
                self._clock.now(),
            )
        if record.package_date is not None:
            sku, what = PACKAGE_SKU, f"Photo package {record.package_date.isoformat()}"
        else:
            sku, what = PHOTO_SKU, "Ride photo"
        try:
            outcome = await self._payments.charge(
                guest_id=record.guest_id,
                amount_minor=record.price_minor,
                currency=record.currency,
                charged_at=record.charged_at,
                key=record.charge_key,
                sku=sku,
                description=what,
            )
        except PaymentError:
            # Access refused the request itself: nothing was charged.
            raise Unavailable("payments cannot take this purchase now") from None
        message = (
            "Thank you! Your photo is yours to keep"
            if outcome.approved
            else messages.decline_text(outcome.decline_reason)
        )
        finished = await self._store.finish_purchase(
            record.purchase_id,
            outcome.approved,
            outcome.charge_id if outcome.approved else "",
            0 if outcome.approved else outcome.decline_reason,
            message,
            self._clock.now(),
        )
        self._hub.poke()
        return finished

    async def resume_pending(self, now: datetime) -> int:
        """Finish purchases whose charge was interrupted (nobody retried)."""
        done = 0
        for record in await self._store.pending_purchases(now - timedelta(minutes=1)):
            if now - record.charged_at > GIVE_UP:
                await self._store.finish_purchase(
                    record.purchase_id,
                    False,
                    "",
                    pb.PURCHASE_DECLINE_REASON_OTHER,
                    messages.decline_text(pb.PURCHASE_DECLINE_REASON_OTHER),
                    now,
                )
                continue
            try:
                await self._complete(record)
                done += 1
            except Unavailable:
                log.info("pending purchase still waits for payments")
                break
        return done

    async def refund_wrong_photo(self, record: PurchaseRecord) -> None:
        """Refund a photo bought on its own that the party says is not them."""
        try:
            await self._refund(record, self._clock.now(), "photo unlinked: not us")
        except PaymentError:
            raise Unavailable("payments cannot refund this photo now") from None

    async def refund_superseded(self) -> int:
        """Refund photos bought through a link the service later took back (a
        photographer's late tap gave the photo to another party): the buyer
        no longer has what they paid for. Safe to run any number of times: the
        refund's key is the purchase's, the same one an unlink as "not us"
        uses, so access refunds a purchase once whichever path comes first."""
        done = 0
        for record in await self._store.superseded_purchases():
            try:
                await self._refund(record, self._clock.now(), "photo taken back: not yours")
            except PaymentError:
                # Access refused the refund itself (not a matter of retrying).
                log.warning("a superseded photo's refund was refused")
                continue
            done += 1
        return done

    async def _refund(self, record: PurchaseRecord, now: datetime, reason: str) -> None:
        await self._payments.refund(
            charge_id=record.charge_id,
            refunded_at=now,
            key=f"refund-{record.purchase_id}",
            reason=reason,
        )
        await self._store.mark_refunded(record.purchase_id, now)

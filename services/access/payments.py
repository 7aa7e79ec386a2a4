"""The Charge hot path and the wallet's other writes around the ledger rules.

Charge: who pays (the band from memory, or the signed-in guest of an in-app
purchase), one read of the wallet's state (balance, PIN attempts, the band's
rules and spend today, with the wallet's version), the decision (ledger.py),
and one write that records it all only if the wallet is still at that version.
A retried charge with the same key finds its key taken and gets the first
reply: it is never applied twice. Declines are recorded too, for audit and so
that a retry gets the same answer.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from services.access import ledger, messages
from services.access.bands import BandDirectory
from services.access.decisions import Wearer
from services.access.ids import new_id
from services.access.ledger import ChargeAsk, ChargeOutcome
from services.access.store import RECORDED, AccessStore, ChargeWrite, Stale
from services.access.telemetry import Tally, database_time
from services.access.venue_index import VenueIndex
from services.platform import semconv
from services.platform.errors import Aborted
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2

MAX_ATTEMPTS = 5
APPROVED, DECLINED = pb.CHARGE_RESULT_APPROVED, pb.CHARGE_RESULT_DECLINED


@dataclass(frozen=True)
class Purchase:
    """One Charge request, validated."""

    merchant_id: str
    # A band presented at a till (the PIN rule applies), not an in-app purchase.
    at_till: bool
    items: Sequence[pb.LineItem]
    amount_minor: int
    pin: str | None
    charged_at: datetime
    scope: str
    key: str
    digest: bytes
    created_by: str


class Cashier:
    def __init__(
        self,
        store: AccessStore,
        directory: BandDirectory,
        venue: VenueIndex,
        pin_key: bytes,
    ) -> None:
        self._store = store
        self._directory = directory
        self._venue = venue
        self._pin_key = pin_key
        meter = metrics.get_meter("venue.access")
        self._results = Tally(meter, semconv.ACCESS_PAYMENTS)

    def pin_hash(self, party_id: str, pin: str) -> bytes:
        return ledger.hash_pin(self._pin_key, party_id, pin)

    def _pin_check(self, party_id: str) -> Callable[[bytes, str], bool]:
        def matches(stored: bytes, given: str) -> bool:
            return hmac.compare_digest(stored, self.pin_hash(party_id, given))

        return matches

    def _count(self, merchant_id: str, reason: int) -> None:
        def attributes() -> dict[str, str]:
            why = pb.DeclineReason.Name(reason)  # type: ignore[arg-type]
            return {
                semconv.MERCHANT: merchant_id,
                semconv.OUTCOME: "approved" if reason == 0 else "declined",
                semconv.DECLINE_REASON: semconv.strip_enum(why, "DECLINE_REASON_"),
            }

        self._results.add((merchant_id, reason), attributes)

    async def charge(self, purchase: Purchase, wearer: Wearer | None) -> pb.ChargeResponse:
        span = trace.get_current_span()
        started = time.perf_counter()
        retries = 0
        try:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    if attempt == 0 or wearer is None or not wearer.active:
                        return await self._attempt(purchase, wearer, None, span)
                    # Lost the race to a concurrent change of this wallet: decide
                    # again holding its lock, which guarantees progress.
                    with suppress_instrumentation():
                        async with self._store.locked("wallet", wearer.party_id) as conn:
                            return await self._attempt(purchase, wearer, conn, span)
                except Stale:
                    retries += 1
            raise Aborted("the wallet kept changing; retry the charge", reason="CONFLICT")
        finally:
            database_time(span, started, retries)

    async def _attempt(
        self,
        purchase: Purchase,
        wearer: Wearer | None,
        conn: asyncpg.Connection | None,
        span: trace.Span,
    ) -> pb.ChargeResponse:
        currency = self._venue.currency
        day = self._venue.day_of(purchase.charged_at)
        charge_id = new_id()
        version: int | None = None
        if wearer is None:
            outcome = ChargeOutcome(False, pb.DECLINE_REASON_UNKNOWN_BAND, "Band not recognised")
        elif not wearer.active:
            outcome = ChargeOutcome(
                False, pb.DECLINE_REASON_BAND_DEACTIVATED, "This band is no longer active"
            )
        else:
            wallet = await self._store.wallet_state(
                wearer.party_id, wearer.band_id or None, day, conn
            )
            version = wallet.version
            outcome = ledger.decide_charge(
                ChargeAsk(purchase.amount_minor, purchase.pin, purchase.at_till, wearer.role),
                wallet,
                self._venue.pin_threshold_minor,
                self._pin_check(wearer.party_id),
                self._venue.minor_text,
            )
        reply = pb.ChargeResponse(
            charge_id=charge_id,
            result=APPROVED if outcome.approved else DECLINED,
            decline_reason=outcome.reason,  # type: ignore[arg-type]
            display_message=outcome.message,
            amount=messages.money(purchase.amount_minor, currency),
            pin_attempts_remaining=outcome.attempts_remaining,
        )
        if wearer is not None:
            reply.guest_id = wearer.guest_id
            reply.party_id = wearer.party_id
        items = tuple(item.SerializeToString() for item in purchase.items)
        approved = outcome.approved and wearer is not None
        write = ChargeWrite(
            scope=purchase.scope,
            key=purchase.key,
            digest=purchase.digest,
            reply=reply.SerializeToString(),
            charge_id=charge_id,
            result=reply.result,
            reason=outcome.reason,
            merchant_id=purchase.merchant_id,
            party_id=wearer.party_id if wearer else None,
            guest_id=wearer.guest_id if wearer else None,
            band_id=(wearer.band_id or None) if wearer else None,
            items=items,
            amount_minor=purchase.amount_minor,
            currency=currency,
            charged_at=purchase.charged_at,
            day=day,
            created_by=purchase.created_by,
            version=version,
            debit_minor=outcome.debit_minor,
            pin_failures=outcome.pin_failures,
            pin_locked=outcome.pin_locked,
        )
        if approved:
            assert wearer is not None
            _post(write, wearer, purchase, reply.amount)
        result = await self._store.record_charge(write, conn)
        if result != RECORDED:
            with suppress_instrumentation():
                stored = await self._store.stored_reply(
                    "charges", purchase.scope, purchase.key, purchase.digest
                )
            return pb.ChargeResponse.FromString(stored)
        self._count(purchase.merchant_id, outcome.reason)
        if span.is_recording():
            attributes = {
                semconv.MERCHANT: purchase.merchant_id,
                semconv.OUTCOME: "approved" if outcome.approved else "declined",
            }
            if wearer is not None:
                attributes[semconv.PARTY] = wearer.party_id
            span.set_attributes(attributes)
        return reply


def _post(write: ChargeWrite, wearer: Wearer, purchase: Purchase, amount: common_pb2.Money) -> None:
    """An approved charge's ledger entry and event, on its write (built once:
    a second, replaced write record cost a charge more than the entry)."""
    postings = ledger.charge_postings(wearer.party_id, purchase.merchant_id, purchase.amount_minor)
    assert ledger.balanced(postings)
    write.entry_id = new_id()
    write.postings = postings
    write.event = messages.charge_recorded(
        write.charge_id,
        purchase.merchant_id,
        wearer.party_id,
        wearer.guest_id,
        amount,
        purchase.items,
        purchase.charged_at,
    )

"""Wallet and ledger rules, free of I/O.

The ledger is double-entry: every top-up, charge and refund is one entry whose
postings sum to zero in one currency. Accounts:

- `wallet:<party_id>`: a party's stored value. Never below zero: the store
  keeps its balance on the wallet row, changed only under the row's lock and
  guarded by a CHECK, so no code path (nor a concurrent one) can overdraw it.
- `merchant:<merchant_id>`: what a merchant (a venue shop, or a service selling
  in the app such as `photo`) has taken, net of refunds. Never below zero
  because a refund never exceeds what is left of its charge.
- `external:<source>`: the world outside the venue's books (card payments, cash,
  gift cards). It is the one kind of account that runs below zero: a top-up
  moves money from outside into a wallet, so `external:card` stands at minus
  everything taken in by card. Its balance is what the venue owes its guests
  plus what its merchants have earned: the two sides of the books.

A top-up posts (external -x, wallet +x), a charge (wallet -x, merchant +x), a
refund (merchant -x, wallet +x). The store refuses any entry that does not
balance (a trigger), and never updates or deletes a posting.

Charge decisions are made here, in this order, so that a wrong PIN reveals
nothing about the balance: charging turned off for the band; the PIN above the
venue's threshold (band charges at a till only: an in-app purchase is made by
the signed-in guest); the band's daily limit; the wallet's funds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.access.records import WalletState
from services.platform.errors import FailedPrecondition, InvalidArgument
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as identity_pb

CHILD = identity_pb.PARTY_ROLE_CHILD
MAX_PIN_ATTEMPTS = 5
# Sanity bounds on one movement of money (minor units).
MAX_CHARGE_MINOR = 100_000_000
MAX_TOP_UP_MINOR = 10_000_000
MAX_ITEMS = 100
_PIN = re.compile(r"^[0-9]{4,6}$")

FUNDING_ACCOUNTS: dict[int, str] = {
    pb.FUNDING_SOURCE_CARD: "external:card",
    pb.FUNDING_SOURCE_CASH: "external:cash",
    pb.FUNDING_SOURCE_GIFT_CARD: "external:gift-card",
}


def wallet_account(party_id: str) -> str:
    return f"wallet:{party_id}"


def merchant_account(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: str
    amount_minor: int


def top_up_postings(party_id: str, source: int, amount: int) -> tuple[Posting, Posting]:
    return (
        Posting(FUNDING_ACCOUNTS[source], -amount),
        Posting(wallet_account(party_id), amount),
    )


def charge_postings(party_id: str, merchant_id: str, amount: int) -> tuple[Posting, Posting]:
    return (
        Posting(wallet_account(party_id), -amount),
        Posting(merchant_account(merchant_id), amount),
    )


def refund_postings(party_id: str, merchant_id: str, amount: int) -> tuple[Posting, Posting]:
    return (
        Posting(merchant_account(merchant_id), -amount),
        Posting(wallet_account(party_id), amount),
    )


def balanced(postings: Sequence[Posting]) -> bool:
    return len(postings) >= 2 and sum(p.amount_minor for p in postings) == 0


# --- money in requests -------------------------------------------------------------


def money(
    value: common_pb2.Money, field: str, currency: str, *, maximum: int, required: bool = True
) -> int | None:
    """A positive amount in the venue's currency, in minor units."""
    if value.minor_units == 0 and not value.currency:
        if required:
            raise InvalidArgument(field, "required")
        return None
    if value.currency != currency:
        raise InvalidArgument(f"{field}.currency", f"must be {currency}, the venue's currency")
    if value.minor_units <= 0:
        raise InvalidArgument(f"{field}.minor_units", "must be positive")
    if value.minor_units > maximum:
        raise InvalidArgument(f"{field}.minor_units", f"at most {maximum}")
    return value.minor_units


def items_total(items: Sequence[pb.LineItem], currency: str) -> int:
    """Validate a till's line items and return their total."""
    if len(items) > MAX_ITEMS:
        raise InvalidArgument("items", f"at most {MAX_ITEMS} lines")
    total = 0
    for i, item in enumerate(items):
        field = f"items[{i}]"
        if not item.sku or len(item.sku) > 64 or not item.sku.isprintable():
            raise InvalidArgument(f"{field}.sku", "required: up to 64 printable characters")
        if len(item.description) > 200 or not item.description.isprintable():
            raise InvalidArgument(f"{field}.description", "up to 200 printable characters")
        if not 1 <= item.quantity <= 10_000:
            raise InvalidArgument(f"{field}.quantity", "between 1 and 10000")
        unit = money(item.unit_price, f"{field}.unit_price", currency, maximum=MAX_CHARGE_MINOR)
        assert unit is not None
        total += unit * item.quantity
    return total


def pin(value: str, field: str = "pin") -> str:
    if not _PIN.match(value):
        raise InvalidArgument(field, "4 to 6 digits")
    return value


def hash_pin(key: bytes, party_id: str, value: str) -> bytes:
    """A keyed hash: a 4-6 digit PIN cannot survive offline guessing whatever
    the hash, so the key stays out of the database and the lockout bounds
    online guessing."""
    return hmac.new(key, f"{party_id}:{value}".encode(), hashlib.sha256).digest()


def refund_amount(requested: int | None, amount: int, refunded: int) -> int:
    """What a refund moves: the rest of the charge when unset, never more."""
    left = amount - refunded
    if left <= 0:
        raise FailedPrecondition(
            "this charge is already refunded in full", reason="FULLY_REFUNDED", subject="charge_id"
        )
    if requested is None:
        return left
    if requested > left:
        raise FailedPrecondition(
            f"refund exceeds what is left of the charge ({left} minor units)",
            reason="REFUND_EXCEEDS_CHARGE",
            subject="amount",
        )
    return requested


# --- charge decisions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeAsk:
    amount_minor: int
    pin: str | None
    # A band presented at a till (the PIN rule applies), not an in-app purchase.
    at_till: bool
    role: int


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    approved: bool
    reason: int  # DeclineReason; 0 when approved
    message: str
    debit_minor: int = 0
    # New PIN attempt state; None leaves it as it was.
    pin_failures: int | None = None
    pin_locked: bool | None = None
    attempts_remaining: int = 0

    @property
    def changes_wallet(self) -> bool:
        return self.debit_minor > 0 or self.pin_failures is not None


def _decline(reason: int, message: str) -> ChargeOutcome:
    return ChargeOutcome(False, reason, message)


def charging_enabled(rule: bool | None, role: int) -> bool:
    """A band's own rule, else the default: adults may charge, children not
    until an adult of the party turns it on."""
    return rule if rule is not None else role != CHILD


def decide_charge(
    ask: ChargeAsk,
    wallet: WalletState,
    pin_threshold_minor: int,
    pin_matches: Callable[[bytes, str], bool],
    money_text: Callable[[int], str],
) -> ChargeOutcome:
    if not charging_enabled(wallet.charging_enabled, ask.role):
        return _decline(pb.DECLINE_REASON_CHARGING_DISABLED, "Charging is off for this band")
    pin_outcome: ChargeOutcome | None = None
    if ask.at_till and ask.amount_minor > pin_threshold_minor:
        if wallet.pin_hash is None:
            return _decline(pb.DECLINE_REASON_PIN_REQUIRED, "PIN needed: set one in the app")
        if wallet.pin_locked:
            return _decline(pb.DECLINE_REASON_PIN_LOCKED, "PIN locked: reset it in the app")
        if not ask.pin:
            return _decline(pb.DECLINE_REASON_PIN_REQUIRED, "Please enter your PIN")
        if not pin_matches(wallet.pin_hash, ask.pin):
            failures = wallet.pin_failures + 1
            locked = failures >= MAX_PIN_ATTEMPTS
            return ChargeOutcome(
                False,
                pb.DECLINE_REASON_WRONG_PIN,
                "PIN locked: reset it in the app" if locked else "Wrong PIN",
                pin_failures=failures,
                pin_locked=locked,
                attempts_remaining=max(MAX_PIN_ATTEMPTS - failures, 0),
            )
        if wallet.pin_failures:
            pin_outcome = ChargeOutcome(False, 0, "", pin_failures=0, pin_locked=False)
    limit = wallet.daily_limit_minor
    declined: ChargeOutcome | None = None
    if limit is not None and wallet.spent_today_minor + ask.amount_minor > limit:
        left = max(limit - wallet.spent_today_minor, 0)
        declined = _decline(
            pb.DECLINE_REASON_OVER_DAILY_LIMIT, f"Over today's limit ({money_text(left)} left)"
        )
    elif wallet.balance_minor < ask.amount_minor:
        declined = _decline(pb.DECLINE_REASON_INSUFFICIENT_FUNDS, "Not enough funds in the wallet")
    if declined is not None:
        if pin_outcome is not None:
            # The right PIN still clears earlier wrong attempts.
            return ChargeOutcome(
                False, declined.reason, declined.message, pin_failures=0, pin_locked=False
            )
        return declined
    return ChargeOutcome(
        True,
        0,
        f"Approved {money_text(ask.amount_minor)}",
        debit_minor=ask.amount_minor,
        pin_failures=0 if pin_outcome is not None else None,
        pin_locked=False if pin_outcome is not None else None,
    )

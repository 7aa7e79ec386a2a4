"""The ledger rules on their own, with hypothesis: postings always balance, no
balance goes negative, a charge retried with its key applies once, refunds
never exceed their charge, and the PIN and limit rules hold."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.access import ledger
from services.access.ledger import ChargeAsk, Posting
from services.access.records import WalletState
from services.platform.errors import FailedPrecondition
from venue.access.v1 import access_pb2 as pb

KEY = b"k" * 32
THRESHOLD = 5000
ADULT, CHILD = 1, 2


def matches(stored: bytes, given_pin: str) -> bool:
    return stored == ledger.hash_pin(KEY, "party", given_pin)


def wallet(**fields: object) -> WalletState:
    base: dict[str, object] = {
        "version": 1,
        "balance_minor": 10_000,
        "pin_hash": ledger.hash_pin(KEY, "party", "1234"),
        "pin_failures": 0,
        "pin_locked": False,
        "charging_enabled": None,
        "daily_limit_minor": None,
        "spent_today_minor": 0,
    }
    base.update(fields)
    return WalletState(**base)  # type: ignore[arg-type]


def decide(
    amount: int, w: WalletState, pin: str | None = None, role: int = ADULT
) -> ledger.ChargeOutcome:
    return ledger.decide_charge(ChargeAsk(amount, pin, True, role), w, THRESHOLD, matches, str)


@given(
    balance=st.integers(0, 50_000),
    amount=st.integers(1, 50_000),
    limit=st.none() | st.integers(0, 50_000),
    spent=st.integers(0, 50_000),
    enabled=st.none() | st.booleans(),
    role=st.sampled_from([ADULT, CHILD]),
)
def test_a_charge_is_approved_only_within_funds_limit_and_rules(
    balance: int, amount: int, limit: int | None, spent: int, enabled: bool | None, role: int
) -> None:
    w = wallet(
        balance_minor=balance,
        daily_limit_minor=limit,
        spent_today_minor=spent,
        charging_enabled=enabled,
    )
    outcome = decide(amount, w, pin="1234", role=role)
    if outcome.approved:
        assert outcome.debit_minor == amount <= balance
        assert limit is None or spent + amount <= limit
        assert ledger.charging_enabled(enabled, role)
    else:
        assert outcome.debit_minor == 0


def test_decline_reasons_in_order() -> None:
    assert decide(100, wallet(charging_enabled=False)).reason == pb.DECLINE_REASON_CHARGING_DISABLED
    # A child's band is off until an adult turns it on.
    assert decide(100, wallet(), role=CHILD).reason == pb.DECLINE_REASON_CHARGING_DISABLED
    assert decide(100, wallet(charging_enabled=True), role=CHILD).approved
    assert decide(THRESHOLD, wallet()).approved  # at the threshold no PIN is needed
    assert decide(THRESHOLD + 1, wallet()).reason == pb.DECLINE_REASON_PIN_REQUIRED
    no_pin_set = wallet(pin_hash=None)
    assert decide(THRESHOLD + 1, no_pin_set, "1234").reason == pb.DECLINE_REASON_PIN_REQUIRED
    locked = wallet(pin_locked=True)
    assert decide(THRESHOLD + 1, locked, "1234").reason == pb.DECLINE_REASON_PIN_LOCKED
    assert decide(100, locked).approved  # below the threshold a lockout does not matter
    # A wrong PIN is reported before funds: it tells nothing of the balance.
    poor = wallet(balance_minor=0)
    assert decide(THRESHOLD + 1, poor, "9999").reason == pb.DECLINE_REASON_WRONG_PIN
    assert decide(THRESHOLD + 1, poor, "1234").reason == pb.DECLINE_REASON_INSUFFICIENT_FUNDS
    limited = wallet(daily_limit_minor=1000, spent_today_minor=900)
    assert decide(101, limited).reason == pb.DECLINE_REASON_OVER_DAILY_LIMIT
    assert decide(100, limited).approved


def test_wrong_pins_lock_after_five_and_a_right_pin_clears_the_count() -> None:
    w = wallet()
    for attempt in range(1, ledger.MAX_PIN_ATTEMPTS + 1):
        outcome = decide(THRESHOLD + 1, w, "0000")
        assert outcome.reason == pb.DECLINE_REASON_WRONG_PIN
        assert outcome.pin_failures == attempt
        assert outcome.attempts_remaining == ledger.MAX_PIN_ATTEMPTS - attempt
        assert outcome.pin_locked is (attempt == ledger.MAX_PIN_ATTEMPTS)
        w = wallet(pin_failures=attempt, pin_locked=bool(outcome.pin_locked))
    assert decide(THRESHOLD + 1, w, "1234").reason == pb.DECLINE_REASON_PIN_LOCKED
    cleared = decide(THRESHOLD + 1, wallet(pin_failures=3), "1234")
    assert cleared.approved and cleared.pin_failures == 0


def test_in_app_purchases_need_no_pin() -> None:
    ask = ChargeAsk(THRESHOLD + 1, None, False, ADULT)
    assert ledger.decide_charge(ask, wallet(), THRESHOLD, matches, str).approved


def test_pin_hash_is_keyed_and_per_party() -> None:
    assert ledger.hash_pin(KEY, "a", "1234") != ledger.hash_pin(KEY, "b", "1234")
    assert ledger.hash_pin(KEY, "a", "1234") != ledger.hash_pin(b"x" * 32, "a", "1234")
    assert ledger.hash_pin(KEY, "a", "1234") != hashlib.sha256(b"1234").digest()


@given(amount=st.integers(1, 10**9), party=st.uuids(), merchant=st.text(min_size=1))
def test_every_entry_balances(amount: int, party: object, merchant: str) -> None:
    for postings in (
        ledger.top_up_postings(str(party), pb.FUNDING_SOURCE_CARD, amount),
        ledger.charge_postings(str(party), merchant, amount),
        ledger.refund_postings(str(party), merchant, amount),
    ):
        assert ledger.balanced(postings)


def test_refund_amounts_are_bounded() -> None:
    assert ledger.refund_amount(None, 1000, 300) == 700
    assert ledger.refund_amount(700, 1000, 300) == 700
    with pytest.raises(FailedPrecondition):
        ledger.refund_amount(701, 1000, 300)
    with pytest.raises(FailedPrecondition):
        ledger.refund_amount(None, 1000, 1000)


class Books(RuleBasedStateMachine):
    """The wallet and ledger rules composed as the store composes them: each
    write is decided on the current state and applied once per key."""

    def __init__(self) -> None:
        super().__init__()
        self.balances: dict[str, int] = defaultdict(int)  # account -> balance
        self.entries: list[tuple[Posting, ...]] = []
        self.charges: dict[str, tuple[str, int]] = {}  # key -> (party, amount)
        self.refunded: dict[str, int] = defaultdict(int)
        self.replies: dict[str, bool] = {}
        self.wallet: dict[str, int] = defaultdict(int)

    def _post(self, postings: tuple[Posting, ...]) -> None:
        assert ledger.balanced(postings)
        for p in postings:
            self.balances[p.account_id] += p.amount_minor
        self.entries.append(postings)

    @rule(party=st.sampled_from(["a", "b"]), amount=st.integers(1, 5000))
    def top_up(self, party: str, amount: int) -> None:
        self._post(ledger.top_up_postings(party, pb.FUNDING_SOURCE_CASH, amount))
        self.wallet[party] += amount

    @rule(
        key=st.sampled_from([f"k{i}" for i in range(8)]),
        party=st.sampled_from(["a", "b"]),
        amount=st.integers(1, 4000),
    )
    def charge(self, key: str, party: str, amount: int) -> None:
        if key in self.replies:
            return  # a retry: the first reply stands, nothing is applied again
        w = wallet(balance_minor=self.wallet[party], pin_hash=None)
        outcome = ledger.decide_charge(ChargeAsk(amount, None, False, ADULT), w, 0, matches, str)
        self.replies[key] = outcome.approved
        if outcome.approved:
            self._post(ledger.charge_postings(party, "shop", amount))
            self.wallet[party] -= amount
            self.charges[key] = (party, amount)

    @precondition(lambda self: bool(self.charges))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.charges)))
        party, amount = self.charges[key]
        want = data.draw(st.none() | st.integers(1, amount))
        try:
            moved = ledger.refund_amount(want, amount, self.refunded[key])
        except FailedPrecondition:
            return
        self._post(ledger.refund_postings(party, "shop", moved))
        self.wallet[party] += moved
        self.refunded[key] += moved

    @invariant()
    def books_balance(self) -> None:
        assert sum(self.balances.values()) == 0

    @invariant()
    def wallets_never_negative_and_match_postings(self) -> None:
        for party, balance in self.wallet.items():
            assert balance >= 0
            assert self.balances[ledger.wallet_account(party)] == balance
        assert self.balances[ledger.merchant_account("shop")] >= 0

    @invariant()
    def refunds_bounded(self) -> None:
        for key, (_, amount) in self.charges.items():
            assert 0 <= self.refunded[key] <= amount

    @invariant()
    def each_approved_key_charged_once(self) -> None:
        charged = sum(
            1
            for e in self.entries
            if e[0].account_id.startswith("wallet:") and e[0].amount_minor < 0
        )
        assert charged == sum(self.replies.values())


Books.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestBooks = Books.TestCase

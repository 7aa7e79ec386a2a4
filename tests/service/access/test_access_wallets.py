"""Wallets, charges, refunds and the ledger over a real socket, against the real
PostgreSQL: PIN and limit rules, a child's band, refunds bounded by their
charge, concurrent retries charging once, who may read and write what, and the
books balancing afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.access.conftest import (
    MERCHANT,
    POS,
    READER,
    TILL,
    Access,
    Member,
    key,
    new_uid,
    ts,
)
from tests.support.stubs import bearer, expect_error
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2

APPROVED, DECLINED = pb.CHARGE_RESULT_APPROVED, pb.CHARGE_RESULT_DECLINED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED


def usd(minor: int) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency="USD")


async def books_balance(access: Access) -> None:
    """The ledger's invariants, straight from the tables."""
    unbalanced = await access.db.fetchval(
        "SELECT count(*) FROM (SELECT entry_id FROM access.postings GROUP BY entry_id "
        "HAVING sum(amount_minor) <> 0) AS x"
    )
    assert unbalanced == 0
    assert (
        await access.db.fetchval("SELECT coalesce(sum(amount_minor), 0) FROM access.postings") == 0
    )
    mismatched = await access.db.fetchval(
        "SELECT count(*) FROM access.wallets w WHERE w.balance_minor < 0 OR w.balance_minor <> "
        "(SELECT coalesce(sum(amount_minor), 0) FROM access.postings p "
        "WHERE p.account_id = 'wallet:' || w.party_id)"
    )
    assert mismatched == 0
    over = await access.db.fetchval(
        "SELECT count(*) FROM access.charges c WHERE c.refunded_minor <> "
        "(SELECT coalesce(sum(amount_minor), 0) FROM access.refunds r "
        "WHERE r.charge_id = c.charge_id) "
        "OR c.refunded_minor > c.amount_minor"
    )
    assert over == 0


async def wallet(access: Access, member: Member) -> pb.Wallet:
    reply = await access.stub.GetWallet(
        pb.GetWalletRequest(party_id=member.party_id), metadata=bearer(member.token)
    )
    return reply.wallet


async def test_top_up_charge_and_statement(access: Access) -> None:
    ann = await access.member()
    top = await access.top_up(ann, 10_000)
    assert top.wallet.balance.minor_units == 10_000 and top.entry_id
    charge = await access.stub.Charge(
        pb.ChargeRequest(
            merchant_id=MERCHANT,
            band_uid=ann.band_uid,
            items=[
                pb.LineItem(sku="plush", description="Plush toy", quantity=2, unit_price=usd(1250))
            ],
            amount=usd(2500),
            charged_at=ts(datetime.now(UTC)),
            idempotency_key=key(),
        ),
        metadata=await access.device(POS, TILL),
    )
    assert charge.result == APPROVED and charge.party_id == ann.party_id
    w = await wallet(access, ann)
    assert w.balance.minor_units == 7_500
    assert [b.band_id for b in w.bands] == [ann.band_id]
    assert w.bands[0].spent_today.minor_units == 2500 and w.bands[0].charging_enabled
    assert w.pin_required_above.minor_units == 5000
    statement = await access.stub.GetStatement(
        pb.GetStatementRequest(party_id=ann.party_id), metadata=bearer(ann.token)
    )
    assert [line.kind for line in statement.lines] == [
        pb.LEDGER_ENTRY_KIND_CHARGE,
        pb.LEDGER_ENTRY_KIND_TOP_UP,
    ]
    assert [line.amount.minor_units for line in statement.lines] == [-2500, 10_000]
    assert [line.balance_after.minor_units for line in statement.lines] == [7_500, 10_000]
    assert statement.lines[0].items[0].sku == "plush"
    assert statement.lines[0].merchant_id == MERCHANT
    assert statement.balance.minor_units == 7_500
    page = await access.stub.GetStatement(
        pb.GetStatementRequest(party_id=ann.party_id, page=common_pb2.PageRequest(page_size=1)),
        metadata=bearer(ann.token),
    )
    assert len(page.lines) == 1 and page.next_page_token
    rest = await access.stub.GetStatement(
        pb.GetStatementRequest(
            party_id=ann.party_id,
            page=common_pb2.PageRequest(page_size=1, page_token=page.next_page_token),
        ),
        metadata=bearer(ann.token),
    )
    assert rest.lines[0].kind == pb.LEDGER_ENTRY_KIND_TOP_UP and not rest.next_page_token
    await books_balance(access)


async def test_insufficient_funds_and_no_wallet(access: Access) -> None:
    ann = await access.member()
    reply = await access.charge(ann.band_uid, 100)
    assert reply.result == DECLINED and reply.decline_reason == pb.DECLINE_REASON_INSUFFICIENT_FUNDS
    assert reply.charge_id  # declines are recorded for audit
    await access.top_up(ann, 500)
    assert (await access.charge(ann.band_uid, 501)).decline_reason == (
        pb.DECLINE_REASON_INSUFFICIENT_FUNDS
    )
    assert (await access.charge(ann.band_uid, 500)).result == APPROVED
    assert (await wallet(access, ann)).balance.minor_units == 0


async def test_unknown_band_cannot_pay(access: Access) -> None:
    reply = await access.charge(new_uid(), 100)
    assert reply.decline_reason == pb.DECLINE_REASON_UNKNOWN_BAND and reply.party_id == ""


async def test_pin_above_the_threshold_and_lockout(access: Access) -> None:
    ann = await access.member()
    await access.top_up(ann, 100_000)
    assert (await access.charge(ann.band_uid, 5000)).result == APPROVED  # at the threshold
    no_pin = await access.charge(ann.band_uid, 5001, pin="1234")
    assert no_pin.decline_reason == pb.DECLINE_REASON_PIN_REQUIRED  # none set yet
    await access.stub.SetPin(
        pb.SetPinRequest(party_id=ann.party_id, pin="2468"), metadata=bearer(ann.token)
    )
    assert (await access.charge(ann.band_uid, 5001)).decline_reason == (
        pb.DECLINE_REASON_PIN_REQUIRED
    )
    assert (await access.charge(ann.band_uid, 5001, pin="2468")).result == APPROVED
    for left in (4, 3, 2, 1, 0):
        wrong = await access.charge(ann.band_uid, 5001, pin="0000")
        assert wrong.decline_reason == pb.DECLINE_REASON_WRONG_PIN
        assert wrong.pin_attempts_remaining == left
    locked = await access.charge(ann.band_uid, 5001, pin="2468")
    assert locked.decline_reason == pb.DECLINE_REASON_PIN_LOCKED
    assert (await wallet(access, ann)).pin_locked
    assert (await access.charge(ann.band_uid, 100)).result == APPROVED  # below the threshold
    reset = await access.stub.SetPin(
        pb.SetPinRequest(party_id=ann.party_id, pin="1357"), metadata=bearer(ann.token)
    )
    assert reset.wallet.pin_set and not reset.wallet.pin_locked
    assert (await access.charge(ann.band_uid, 5001, pin="1357")).result == APPROVED


async def test_daily_limit_and_a_childs_band(access: Access) -> None:
    ann = await access.member()
    kid = await access.child(ann, height_cm=120)
    await access.wait_in_map(kid.band_uid)
    await access.top_up(ann, 10_000)
    off = await access.charge(kid.band_uid, 100)
    assert off.decline_reason == pb.DECLINE_REASON_CHARGING_DISABLED  # children start off
    limit = await access.stub.SetBandSpendingLimit(
        pb.SetBandSpendingLimitRequest(
            band_id=kid.band_id, charging_enabled=True, daily_limit=usd(1000)
        ),
        metadata=bearer(ann.token),
    )
    assert limit.band.charging_enabled and limit.band.daily_limit.minor_units == 1000
    assert (await access.charge(kid.band_uid, 600)).result == APPROVED
    over = await access.charge(kid.band_uid, 401)
    assert over.decline_reason == pb.DECLINE_REASON_OVER_DAILY_LIMIT
    assert (await access.charge(kid.band_uid, 400)).result == APPROVED
    await access.stub.SetBandSpendingLimit(
        pb.SetBandSpendingLimitRequest(band_id=kid.band_id, charging_enabled=False),
        metadata=bearer(ann.token),
    )
    assert (await access.charge(kid.band_uid, 1)).decline_reason == (
        pb.DECLINE_REASON_CHARGING_DISABLED
    )
    bands = {b.band_id: b for b in (await wallet(access, ann)).bands}
    assert not bands[kid.band_id].charging_enabled
    assert bands[kid.band_id].spent_today.minor_units == 1000
    # Another party's adult may not set this band's rules.
    bob = await access.member("Bob")
    await expect_error(
        access.stub.SetBandSpendingLimit(
            pb.SetBandSpendingLimitRequest(band_id=kid.band_id, charging_enabled=True),
            metadata=bearer(bob.token),
        ),
        DENIED,
    )


async def test_refunds_whole_partial_and_bounded(access: Access) -> None:
    ann = await access.member()
    await access.top_up(ann, 10_000)
    charge = await access.charge(ann.band_uid, 3000)
    till = await access.device(POS, TILL)

    async def refund(minor: int | None, idem: str = "") -> pb.RefundResponse:
        request = pb.RefundRequest(
            charge_id=charge.charge_id, reason="broken", idempotency_key=idem or key()
        )
        if minor is not None:
            request.amount.CopyFrom(usd(minor))
        return await access.stub.Refund(request, metadata=till)

    first = await refund(1000)
    assert first.amount.minor_units == 1000 and first.charge.refunded.minor_units == 1000
    await expect_error(refund(2001), grpc.StatusCode.FAILED_PRECONDITION)
    rest = await refund(None)
    assert rest.amount.minor_units == 2000 and rest.charge.refunded.minor_units == 3000
    await expect_error(refund(None), grpc.StatusCode.FAILED_PRECONDITION)
    assert (await wallet(access, ann)).balance.minor_units == 10_000
    # Concurrent retries of one refund move the money once.
    second = await access.charge(ann.band_uid, 1000)
    same = key()
    request = pb.RefundRequest(charge_id=second.charge_id, amount=usd(400), idempotency_key=same)
    replies = await asyncio.gather(
        *(access.stub.Refund(request, metadata=till) for _ in range(6)), return_exceptions=True
    )
    ok = [r for r in replies if isinstance(r, pb.RefundResponse)]
    assert ok and len({r.refund_id for r in ok}) == 1
    got = await access.stub.GetCharge(
        pb.GetChargeRequest(charge_id=second.charge_id), metadata=bearer(ann.token)
    )
    assert got.charge.refunded.minor_units == 400
    # A till of another merchant may not refund it.
    await expect_error(
        access.stub.Refund(
            pb.RefundRequest(charge_id=second.charge_id, idempotency_key=key()),
            metadata=await access.device(POS, "till.circle-cones.1"),
        ),
        DENIED,
    )
    declined = await access.charge(ann.band_uid, 1_000_000)
    await expect_error(
        access.stub.Refund(
            pb.RefundRequest(charge_id=declined.charge_id, idempotency_key=key()), metadata=till
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await books_balance(access)


async def test_concurrent_retries_charge_once_and_never_overdraw(access: Access) -> None:
    ann = await access.member()
    await access.top_up(ann, 1000)
    same, now = key(), datetime.now(UTC)
    replies = await asyncio.gather(
        *(access.charge(ann.band_uid, 300, idem=same, when=now) for _ in range(16))
    )
    assert {r.charge_id for r in replies} == {replies[0].charge_id}
    assert replies[0].result == APPROVED
    assert (await wallet(access, ann)).balance.minor_units == 700
    # Many different charges at once: only what the wallet holds is approved.
    many = await asyncio.gather(*(access.charge(ann.band_uid, 100) for _ in range(12)))
    assert sum(r.result == APPROVED for r in many) == 7
    assert (await wallet(access, ann)).balance.minor_units == 0
    await books_balance(access)


async def test_in_app_purchase_by_the_photo_service(access: Access) -> None:
    ann = await access.member()
    await access.top_up(ann, 10_000)
    reply = await access.stub.Charge(
        pb.ChargeRequest(
            merchant_id="photo",
            guest_id=ann.guest_id,
            amount=usd(6000),  # above the PIN threshold: the guest is signed in
            charged_at=ts(datetime.now(UTC)),
            idempotency_key=key(),
        ),
        metadata=bearer(access.photo),
    )
    assert reply.result == APPROVED and reply.guest_id == ann.guest_id
    refund = await access.stub.Refund(
        pb.RefundRequest(charge_id=reply.charge_id, idempotency_key=key()),
        metadata=bearer(access.photo),
    )
    assert refund.amount.minor_units == 6000
    # A till's charge is not the photo service's to refund.
    till_charge = await access.charge(ann.band_uid, 100)
    await expect_error(
        access.stub.Refund(
            pb.RefundRequest(charge_id=till_charge.charge_id, idempotency_key=key()),
            metadata=bearer(access.photo),
        ),
        DENIED,
    )
    # Services pay by guest, not by band.
    await expect_error(
        access.stub.Charge(
            pb.ChargeRequest(
                merchant_id="photo",
                band_uid=ann.band_uid,
                amount=usd(100),
                charged_at=ts(datetime.now(UTC)),
                idempotency_key=key(),
            ),
            metadata=bearer(access.photo),
        ),
        DENIED,
    )


async def test_who_may_charge(access: Access) -> None:
    ann = await access.member()
    await access.top_up(ann, 1000)
    request = pb.ChargeRequest(
        merchant_id=MERCHANT,
        band_uid=ann.band_uid,
        amount=usd(100),
        charged_at=ts(datetime.now(UTC)),
        idempotency_key=key(),
    )
    # A reader is refused by policy; a till charges only for its own merchant.
    await expect_error(
        access.stub.Charge(request, metadata=await access.device(READER, TILL)), DENIED
    )
    await expect_error(
        access.stub.Charge(request, metadata=await access.device(POS, "till.circle-cones.1")),
        DENIED,
    )
    await expect_error(
        access.stub.Charge(request, metadata=await access.device(POS, "ap.gate.in1")), DENIED
    )
    for token in (ann.token, access.desk, access.queue):
        await expect_error(access.stub.Charge(request, metadata=bearer(token)), DENIED)
    assert await access.count("charges", "party_id = $1", ann.party_id) == 0


async def test_a_guest_sees_only_their_own_party(access: Access) -> None:
    ann = await access.member()
    bob = await access.member("Bob")
    await access.top_up(ann, 1000)
    charge = await access.charge(ann.band_uid, 100)
    for call in (
        access.stub.GetWallet(
            pb.GetWalletRequest(party_id=ann.party_id), metadata=bearer(bob.token)
        ),
        access.stub.GetStatement(
            pb.GetStatementRequest(party_id=ann.party_id), metadata=bearer(bob.token)
        ),
        access.stub.GetCharge(
            pb.GetChargeRequest(charge_id=charge.charge_id), metadata=bearer(bob.token)
        ),
        access.stub.TopUp(
            pb.TopUpRequest(
                party_id=ann.party_id,
                amount=usd(100),
                funding_source=pb.FUNDING_SOURCE_CARD,
                idempotency_key=key(),
            ),
            metadata=bearer(bob.token),
        ),
        access.stub.SetPin(
            pb.SetPinRequest(party_id=ann.party_id, pin="1234"), metadata=bearer(bob.token)
        ),
    ):
        await expect_error(call, DENIED)
    # Desk staff help any party; a till sees its own merchant's charges.
    desk = await access.stub.GetWallet(
        pb.GetWalletRequest(party_id=ann.party_id), metadata=bearer(access.desk)
    )
    assert desk.wallet.balance.minor_units == 900
    seen = await access.stub.GetCharge(
        pb.GetChargeRequest(charge_id=charge.charge_id), metadata=await access.device(POS, TILL)
    )
    assert seen.charge.merchant_id == MERCHANT
    await expect_error(
        access.stub.GetCharge(
            pb.GetChargeRequest(charge_id=charge.charge_id),
            metadata=await access.device(POS, "till.circle-cones.1"),
        ),
        DENIED,
    )


async def test_top_up_is_idempotent(access: Access) -> None:
    ann = await access.member()
    request = pb.TopUpRequest(
        party_id=ann.party_id,
        amount=usd(2500),
        funding_source=pb.FUNDING_SOURCE_CASH,
        payment_reference="desk-7",
        idempotency_key=key(),
    )
    replies = await asyncio.gather(
        *(access.stub.TopUp(request, metadata=bearer(access.desk)) for _ in range(5))
    )
    assert {r.entry_id for r in replies} == {replies[0].entry_id}
    assert (await wallet(access, ann)).balance.minor_units == 2500
    cash = await access.db.fetchval(
        "SELECT sum(amount_minor) FROM access.postings WHERE account_id = 'external:cash' "
        "AND entry_id = $1",
        replies[0].entry_id,
    )
    assert cash == -2500  # the outside world's account runs below zero


async def test_an_unknown_party_gets_no_wallet(access: Access) -> None:
    await expect_error(
        access.stub.TopUp(
            pb.TopUpRequest(
                party_id="00000000-0000-4000-8000-000000000000",
                amount=usd(100),
                funding_source=pb.FUNDING_SOURCE_CASH,
                idempotency_key=key(),
            ),
            metadata=bearer(access.desk),
        ),
        grpc.StatusCode.NOT_FOUND,
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"merchant_id": ""}, "merchant_id"),
        ({"band_uid": "no"}, "band_uid"),
        ({"amount": common_pb2.Money(minor_units=100, currency="EUR")}, "amount.currency"),
        ({"amount": common_pb2.Money(minor_units=-5, currency="USD")}, "amount.minor_units"),
        ({"amount": common_pb2.Money()}, "amount"),
        ({"pin": "12"}, "pin"),
        ({"pin": "abcd"}, "pin"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"charged_at": None}, "charged_at"),
        ({"items": [pb.LineItem(sku="a", quantity=1, unit_price=usd(99))]}, "amount"),
        ({"items": [pb.LineItem(sku="", quantity=1, unit_price=usd(100))]}, "items[0].sku"),
        ({"items": [pb.LineItem(sku="a", quantity=0, unit_price=usd(100))]}, "items[0].quantity"),
    ],
)
async def test_charge_bad_input(access: Access, change: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "merchant_id": MERCHANT,
        "band_uid": new_uid(),
        "amount": usd(100),
        "charged_at": ts(datetime.now(UTC)),
        "idempotency_key": key(),
    }
    fields.update(change)
    if fields["charged_at"] is None:
        del fields["charged_at"]
    before = await access.count("charges")
    await expect_error(
        access.stub.Charge(pb.ChargeRequest(**fields), metadata=await access.device(POS, TILL)),  # type: ignore[arg-type]
        INVALID,
        field,
    )
    assert await access.count("charges") == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"party_id": "nope"}, "party_id"),
        ({"amount": usd(0)}, "amount.minor_units"),
        ({"amount": common_pb2.Money(minor_units=5, currency="GBP")}, "amount.currency"),
        ({"amount": usd(10**9)}, "amount.minor_units"),
        ({"funding_source": 0}, "funding_source"),
        ({"payment_reference": "x" * 101}, "payment_reference"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
)
async def test_top_up_bad_input(access: Access, change: dict[str, object], field: str) -> None:
    ann = await access.member()
    fields: dict[str, object] = {
        "party_id": ann.party_id,
        "amount": usd(100),
        "funding_source": pb.FUNDING_SOURCE_CARD,
        "idempotency_key": key(),
    }
    fields.update(change)
    before = await access.count("ledger_entries")
    await expect_error(
        access.stub.TopUp(pb.TopUpRequest(**fields), metadata=bearer(ann.token)),  # type: ignore[arg-type]
        INVALID,
        field,
    )
    assert await access.count("ledger_entries") == before


async def test_other_wallet_rpcs_bad_input(access: Access) -> None:
    ann = await access.member()
    me = bearer(ann.token)
    till = await access.device(POS, TILL)
    cases: list[tuple[Awaitable[object], str]] = [
        (access.stub.GetWallet(pb.GetWalletRequest(party_id=""), metadata=me), "party_id"),
        (access.stub.SetPin(pb.SetPinRequest(party_id=ann.party_id, pin="1"), metadata=me), "pin"),
        (
            access.stub.SetPin(pb.SetPinRequest(party_id=ann.party_id, pin="1234567"), metadata=me),
            "pin",
        ),
        (
            access.stub.SetBandSpendingLimit(
                pb.SetBandSpendingLimitRequest(band_id="x"), metadata=me
            ),
            "band_id",
        ),
        (
            access.stub.SetBandSpendingLimit(
                pb.SetBandSpendingLimitRequest(
                    band_id=ann.band_id, daily_limit=common_pb2.Money(minor_units=5, currency="EUR")
                ),
                metadata=me,
            ),
            "daily_limit.currency",
        ),
        (
            access.stub.GetStatement(
                pb.GetStatementRequest(
                    party_id=ann.party_id, page=common_pb2.PageRequest(page_token="junk")
                ),
                metadata=me,
            ),
            "page.page_token",
        ),
        (
            access.stub.GetStatement(
                pb.GetStatementRequest(
                    party_id=ann.party_id,
                    period=common_pb2.TimeRange(
                        start=ts(datetime(2031, 1, 2, tzinfo=UTC)),
                        end=ts(datetime(2031, 1, 1, tzinfo=UTC)),
                    ),
                ),
                metadata=me,
            ),
            "period.end",
        ),
        (access.stub.GetCharge(pb.GetChargeRequest(charge_id="x"), metadata=me), "charge_id"),
        (
            access.stub.Refund(
                pb.RefundRequest(charge_id="x", idempotency_key=key()), metadata=till
            ),
            "charge_id",
        ),
        (
            access.stub.Refund(
                pb.RefundRequest(charge_id="00000000-0000-4000-8000-000000000000"), metadata=till
            ),
            "idempotency_key",
        ),
        (
            access.stub.Refund(
                pb.RefundRequest(
                    charge_id="00000000-0000-4000-8000-000000000000",
                    amount=usd(-1),
                    idempotency_key=key(),
                ),
                metadata=till,
            ),
            "amount.minor_units",
        ),
    ]
    for call, field in cases:
        await expect_error(call, INVALID, field)
    await expect_error(
        access.stub.GetCharge(
            pb.GetChargeRequest(charge_id="00000000-0000-4000-8000-000000000000"), metadata=me
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await access.count("wallets", "party_id = $1", ann.party_id) == 0


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["top_up", "charge", "refund"]),
            st.integers(1, 3000),
            st.integers(1, 4),  # how many times the same request is sent at once
        ),
        min_size=3,
        max_size=10,
    )
)
async def test_books_hold_under_concurrent_retries(
    access: Access, ops: list[tuple[str, int, int]]
) -> None:
    ann = await access.member()
    till = await access.device(POS, TILL)
    approved: list[tuple[str, int]] = []
    expected = 0
    for op, minor, copies in ops:
        if op == "top_up":
            request = pb.TopUpRequest(
                party_id=ann.party_id,
                amount=usd(minor),
                funding_source=pb.FUNDING_SOURCE_CARD,
                idempotency_key=key(),
            )
            await asyncio.gather(
                *(access.stub.TopUp(request, metadata=bearer(ann.token)) for _ in range(copies))
            )
            expected += minor
        elif op == "charge":
            same, now = key(), datetime.now(UTC)
            replies = await asyncio.gather(
                *(access.charge(ann.band_uid, minor, idem=same, when=now) for _ in range(copies))
            )
            assert len({r.SerializeToString() for r in replies}) == 1
            if replies[0].result == APPROVED:
                approved.append((replies[0].charge_id, minor))
                expected -= minor
            else:
                assert replies[0].decline_reason == pb.DECLINE_REASON_INSUFFICIENT_FUNDS
        elif approved:
            charge_id, charged = approved.pop()
            amount = min(minor, charged)
            refund = pb.RefundRequest(
                charge_id=charge_id, amount=usd(amount), idempotency_key=key()
            )
            await asyncio.gather(
                *(access.stub.Refund(refund, metadata=till) for _ in range(copies)),
                return_exceptions=True,
            )
            expected += amount
        assert expected >= 0
    assert (await wallet(access, ann)).balance.minor_units == expected
    await books_balance(access)

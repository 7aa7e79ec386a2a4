"""Charging photo purchases to the party's wallet, through access.

Photo sells in the app: it charges by the signed-in guest's id (their band's
spending rules apply) under its own merchant id, with an idempotency key
derived from the app's, so a retried purchase is charged once. A wrong photo
bought on its own is refunded the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import grpc

from services.platform.errors import Unavailable
from services.platform.validation import to_timestamp
from venue.access.v1 import access_pb2, access_pb2_grpc
from venue.common.v1 import common_pb2
from venue.photo.v1 import photo_pb2 as pb

log = logging.getLogger("venue.photo.payments")

_DECLINES = {
    access_pb2.DECLINE_REASON_INSUFFICIENT_FUNDS: pb.PURCHASE_DECLINE_REASON_INSUFFICIENT_FUNDS,
    access_pb2.DECLINE_REASON_OVER_DAILY_LIMIT: pb.PURCHASE_DECLINE_REASON_OVER_DAILY_LIMIT,
    access_pb2.DECLINE_REASON_CHARGING_DISABLED: pb.PURCHASE_DECLINE_REASON_CHARGING_DISABLED,
}
# Worth retrying with the same key: the charge was not decided, or we cannot
# tell.
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
}


@dataclass(frozen=True)
class ChargeOutcome:
    approved: bool
    charge_id: str
    # PurchaseDeclineReason when declined.
    decline_reason: int
    display_message: str


class PaymentError(Exception):
    """Access refused the request itself (not a decline): not worth a retry."""


class Payments:
    def __init__(self, channel: grpc.aio.Channel, merchant_id: str) -> None:
        self._stub = access_pb2_grpc.AccessServiceStub(channel)
        self._merchant = merchant_id

    async def charge(
        self,
        *,
        guest_id: str,
        amount_minor: int,
        currency: str,
        charged_at: datetime,
        key: str,
        sku: str,
        description: str,
    ) -> ChargeOutcome:
        price = common_pb2.Money(minor_units=amount_minor, currency=currency)
        request = access_pb2.ChargeRequest(
            merchant_id=self._merchant,
            guest_id=guest_id,
            items=[
                access_pb2.LineItem(sku=sku, description=description, quantity=1, unit_price=price)
            ],
            amount=price,
            charged_at=to_timestamp(charged_at),
            idempotency_key=key,
        )
        try:
            reply = await self._stub.Charge(request)
        except grpc.aio.AioRpcError as err:
            raise self._error(err, "charge") from None
        if reply.result == access_pb2.CHARGE_RESULT_APPROVED:
            return ChargeOutcome(True, reply.charge_id, 0, reply.display_message)
        reason = _DECLINES.get(reply.decline_reason, pb.PURCHASE_DECLINE_REASON_OTHER)
        return ChargeOutcome(False, reply.charge_id, reason, reply.display_message)

    async def refund(self, *, charge_id: str, refunded_at: datetime, key: str, reason: str) -> None:
        request = access_pb2.RefundRequest(
            charge_id=charge_id,
            reason=reason,
            refunded_at=to_timestamp(refunded_at),
            idempotency_key=key,
        )
        try:
            await self._stub.Refund(request)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                # Nothing left to refund: an earlier attempt did it.
                return
            raise self._error(err, "refund") from None

    @staticmethod
    def _error(err: grpc.aio.AioRpcError, what: str) -> Exception:
        log.warning(
            "access refused a %s", what, extra={"code": err.code().name, "detail": err.details()}
        )
        if err.code() in _RETRYABLE:
            return Unavailable("payments are unavailable; retry with the same idempotency key")
        return PaymentError(err.code().name)

"""The queue gRPC servicer: parse, authorize, call the twin or the booking
desk, answer."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc

from services.platform import events, idempotency, paging, validation
from services.platform.errors import InvalidArgument, NotFound, PermissionDenied
from services.platform.events import EventHub
from services.platform.idempotency import Idem
from services.platform.principal import caller
from services.queue import bookings as rules
from services.queue.bookdesk import BookingDesk
from services.queue.bookings import Window
from services.queue.forecast import SLOT, slot_start
from services.queue.live import FORECAST_CHANGED, STATUS_CHANGED, WAIT_CHANGED, LiveTwin
from services.queue.messages import (
    SLOT_LENGTH,
    forecast_message,
    instant,
    sample_message,
    time_range,
)
from services.queue.schedule import CLOSED, DOWN, SCHEDULED, OpsStatus
from services.queue.store import BookingRecord, QueueStore
from services.queue.telemetry import set_attraction
from venue.access.v1 import access_pb2 as apb
from venue.common.v1 import common_pb2
from venue.queue.v1 import queue_pb2 as pb
from venue.queue.v1 import queue_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

EVENT_KINDS = {
    pb.QUEUE_EVENT_KIND_WAIT_CHANGED: WAIT_CHANGED,
    pb.QUEUE_EVENT_KIND_STATUS_CHANGED: STATUS_CHANGED,
    pb.QUEUE_EVENT_KIND_FORECAST_CHANGED: FORECAST_CHANGED,
    pb.QUEUE_EVENT_KIND_BOOKING_CREATED: "booking_created",
    pb.QUEUE_EVENT_KIND_BOOKING_CALLED: "booking_called",
    pb.QUEUE_EVENT_KIND_BOOKING_CANCELLED: "booking_cancelled",
}
MAX_ATTRACTIONS = 500
MAX_NOTE = 200
MAX_HORIZON = 24 * 3600.0
HISTORY_PAGE, HISTORY_MAX = 60, 500
STAFF_CANCEL_REASONS = (pb.CANCEL_REASON_GUEST, pb.CANCEL_REASON_STAFF)
INACTIVE = (rules.REDEEMED, rules.CANCELLED, rules.EXPIRED)


def _idem(method: str, key: str, request: Any) -> Idem:
    return Idem(
        scope=f"{method}:{caller().log_id}",
        key=idempotency.check_key(key, required=True),
        digest=idempotency.request_hash(request),
    )


def _seconds(ts: Any, field: str, required: bool = False) -> float | None:
    value = validation.timestamp(ts, field, required=required)
    return value.timestamp() if value is not None else None


def _window(message: common_pb2.TimeRange, field: str) -> Window:
    start = _seconds(message.start, f"{field}.start", required=True)
    end = _seconds(message.end, f"{field}.end", required=True)
    assert start is not None and end is not None
    if end <= start:
        raise InvalidArgument(f"{field}.end", "must be after start")
    return Window(start, end)


class QueueServicer(queue_pb2_grpc.QueueServiceServicer):
    def __init__(self, live: LiveTwin, desk: BookingDesk, store: QueueStore, hub: EventHub) -> None:
        self._live = live
        self._desk = desk
        self._store = store
        self._hub = hub

    # --- helpers -------------------------------------------------------------

    def _attraction(self, value: str, field: str = "attraction_id") -> str:
        attraction = validation.ref(value, field)
        if attraction not in self._live.lines.specs:
            raise NotFound("attraction", attraction)
        set_attraction(attraction)
        return attraction

    def _attractions(self, values: Any, field: str = "attraction_ids") -> list[str]:
        if len(values) > MAX_ATTRACTIONS:
            raise InvalidArgument(field, f"at most {MAX_ATTRACTIONS}")
        found: list[str] = []
        for i, value in enumerate(values):
            attraction = self._attraction(value, f"{field}[{i}]")
            if attraction not in found:
                found.append(attraction)
        return found

    @staticmethod
    def _guests(values: Any) -> list[str]:
        if not values:
            raise InvalidArgument("guest_ids", "required: at least one guest")
        if len(values) > rules.MAX_PARTY:
            raise InvalidArgument("guest_ids", f"at most {rules.MAX_PARTY} guests")
        guests = [validation.ident(v, f"guest_ids[{i}]") for i, v in enumerate(values)]
        if len(set(guests)) != len(guests):
            raise InvalidArgument("guest_ids", "a guest is listed twice")
        return guests

    @staticmethod
    def _caller_party() -> str | None:
        """For a guest: their party, the only one they may act for."""
        who = caller()
        return who.party_id if who.is_guest else None

    async def _booking(self, booking_id: str) -> BookingRecord:
        booking_id = validation.ident(booking_id, "booking_id")
        record = await self._store.get_booking(booking_id)
        if record is None:
            raise NotFound("booking", booking_id)
        set_attraction(record.attraction_id)
        party = self._caller_party()
        if party is not None and record.party_id != party:
            raise PermissionDenied("not allowed to see another party's booking")
        return record

    # --- waits ----------------------------------------------------------------

    async def GetWaitTimes(
        self, request: pb.GetWaitTimesRequest, context: Context
    ) -> pb.GetWaitTimesResponse:
        attractions = self._attractions(request.attraction_ids)
        reply = pb.GetWaitTimesResponse(waits=self._live.tip_board(attractions))
        reply.as_of.FromNanoseconds(round(self._live.now() * 1e9))
        return reply

    async def GetAttractionState(
        self, request: pb.GetAttractionStateRequest, context: Context
    ) -> pb.GetAttractionStateResponse:
        attraction = self._attraction(request.attraction_id)
        return pb.GetAttractionStateResponse(state=self._live.state(attraction))

    async def SetAttractionStatus(
        self, request: pb.SetAttractionStatusRequest, context: Context
    ) -> pb.SetAttractionStatusResponse:
        attraction = self._attraction(request.attraction_id)
        status = validation.enum_value(request.status, pb.AttractionStatus, "status")
        reason = request.reason
        if reason and reason not in pb.StatusReason.values():
            raise InvalidArgument("reason", "not a defined value")
        if status in (DOWN, CLOSED) and not reason:
            raise InvalidArgument("reason", "required for DOWN and CLOSED")
        if reason == SCHEDULED:
            raise InvalidArgument("reason", "scheduled hours are the venue's, not a decision")
        note = validation.text(request.note, "note", max_len=MAX_NOTE, required=False)
        now = self._live.now()
        expected = _seconds(request.expected_reopen_at, "expected_reopen_at")
        if expected is not None:
            if status != DOWN:
                raise InvalidArgument("expected_reopen_at", "only for DOWN")
            if not now < expected <= now + MAX_HORIZON:
                raise InvalidArgument("expected_reopen_at", "must be within the next 24 hours")
        decision = OpsStatus(status, reason, note, now, expected)
        await self._live.set_status(attraction, decision, caller().subject)
        return pb.SetAttractionStatusResponse(state=self._live.state(attraction))

    async def GetForecast(
        self, request: pb.GetForecastRequest, context: Context
    ) -> pb.GetForecastResponse:
        attractions = self._attractions(request.attraction_ids) or self._live.attractions
        now = self._live.now()
        start = _seconds(request.start, "start")
        first = slot_start(max(start if start is not None else now, now))
        horizon = None
        if request.HasField("horizon"):
            horizon = request.horizon.ToNanoseconds() / 1e9
            if not 0 < horizon <= MAX_HORIZON:
                raise InvalidArgument("horizon", "more than zero and at most 24 hours")
        day_end = self._live.twin.calendar.day_start(now) + 86400.0
        reply = pb.GetForecastResponse(slot_length=SLOT_LENGTH)
        for attraction in attractions:
            if horizon is not None:
                end = first + horizon
            else:
                _, closes_at = self._live.twin.hours_of(attraction, now)
                end = max(closes_at, first + SLOT)
            end = min(end, day_end)
            count = max(math.ceil((end - slot_start(now)) / SLOT), 1)
            slots = [s for s in self._live.forecast(attraction, now, count) if s.start >= first]
            reply.forecasts.append(forecast_message(attraction, slots, now))
        return reply

    async def GetWaitHistory(
        self, request: pb.GetWaitHistoryRequest, context: Context
    ) -> pb.GetWaitHistoryResponse:
        attraction = self._attraction(request.attraction_id)
        now = self._live.now()
        start = _seconds(request.period.start, "period.start")
        end = _seconds(request.period.end, "period.end")
        start = start if start is not None else self._live.twin.calendar.day_start(now)
        end = end if end is not None else now + 60.0
        if end <= start:
            raise InvalidArgument("period.end", "must be after start")
        size = paging.page_size(request.page.page_size, HISTORY_PAGE, HISTORY_MAX)
        list_name = f"wait-history:{attraction}"
        last = paging.decode(list_name, request.page.page_token)
        after = _decode_instant(last)
        rows = await self._store.history(attraction, instant(start), instant(end), after, size + 1)
        token = paging.next_token(list_name, rows, size, lambda r: [r.at.isoformat()])
        return pb.GetWaitHistoryResponse(
            samples=[sample_message(r) for r in rows[:size]], next_page_token=token
        )

    # --- bookings ---------------------------------------------------------------

    async def ListReturnTimeSlots(
        self, request: pb.ListReturnTimeSlotsRequest, context: Context
    ) -> pb.ListReturnTimeSlotsResponse:
        attraction = self._attraction(request.attraction_id)
        if request.party_size < 0 or request.party_size > rules.MAX_PARTY:
            raise InvalidArgument("party_size", f"0 to {rules.MAX_PARTY}")
        now = self._live.now()
        start = _seconds(request.period.start, "period.start")
        end = _seconds(request.period.end, "period.end")
        start = start if start is not None else now
        end = end if end is not None else math.inf
        if end <= start:
            raise InvalidArgument("period.end", "must be after start")
        size = paging.page_size(request.page.page_size)
        list_name = f"return-slots:{attraction}"
        last = paging.decode(list_name, request.page.page_token)
        after = float(last[0]) if last else None
        if not self._live.lines.specs[attraction].return_time:
            return pb.ListReturnTimeSlotsResponse()
        slots = await self._desk.slots(attraction, now, start, end, request.party_size or 1)
        slots = [s for s in slots if after is None or s.window.start > after]
        token = paging.next_token(list_name, slots, size, lambda s: [s.window.start])
        return pb.ListReturnTimeSlotsResponse(
            slots=[
                pb.ReturnTimeSlot(
                    window=time_range(s.window.start, s.window.end), remaining=s.remaining
                )
                for s in slots[:size]
            ],
            next_page_token=token,
        )

    async def JoinVirtualQueue(
        self, request: pb.JoinVirtualQueueRequest, context: Context
    ) -> pb.JoinVirtualQueueResponse:
        attraction = self._attraction(request.attraction_id)
        guests = self._guests(request.guest_ids)
        idem = _idem("JoinVirtualQueue", request.idempotency_key, request)
        party = await self._desk.party_of(guests, self._caller_party())
        now = self._live.now()
        record = await self._desk.join_virtual_queue(attraction, guests, party, idem, now)
        return pb.JoinVirtualQueueResponse(booking=self._desk.message(record, now))

    async def BookReturnTime(
        self, request: pb.BookReturnTimeRequest, context: Context
    ) -> pb.BookReturnTimeResponse:
        attraction = self._attraction(request.attraction_id)
        guests = self._guests(request.guest_ids)
        window = _window(request.window, "window") if request.HasField("window") else None
        idem = _idem("BookReturnTime", request.idempotency_key, request)
        party = await self._desk.party_of(guests, self._caller_party())
        now = self._live.now()
        record = await self._desk.book_return_time(attraction, guests, party, window, idem, now)
        return pb.BookReturnTimeResponse(booking=self._desk.message(record, now))

    async def CancelBooking(
        self, request: pb.CancelBookingRequest, context: Context
    ) -> pb.CancelBookingResponse:
        booking_id = validation.ident(request.booking_id, "booking_id")
        reason = request.reason
        if caller().is_guest:
            if reason not in (0, pb.CANCEL_REASON_GUEST):
                raise InvalidArgument("reason", "a guest cancels with GUEST (or leaves it unset)")
            reason, revoke = pb.CANCEL_REASON_GUEST, apb.REVOCATION_REASON_CANCELLED
        else:
            if reason and reason not in STAFF_CANCEL_REASONS:
                raise InvalidArgument("reason", "GUEST or STAFF")
            reason = reason or pb.CANCEL_REASON_STAFF
            revoke = (
                apb.REVOCATION_REASON_CANCELLED
                if reason == pb.CANCEL_REASON_GUEST
                else apb.REVOCATION_REASON_STAFF
            )
        await self._booking(booking_id)
        now = self._live.now()
        record = await self._desk.cancel(booking_id, reason, revoke, now)
        return pb.CancelBookingResponse(booking=self._desk.message(record, now))

    async def Rebook(self, request: pb.RebookRequest, context: Context) -> pb.RebookResponse:
        booking_id = validation.ident(request.booking_id, "booking_id")
        if not request.HasField("window"):
            raise InvalidArgument("window", "required: the new window")
        window = _window(request.window, "window")
        idem = _idem("Rebook", request.idempotency_key, request)
        await self._booking(booking_id)
        now = self._live.now()
        record = await self._desk.rebook(booking_id, window, idem, now)
        return pb.RebookResponse(booking=self._desk.message(record, now))

    async def GetBooking(
        self, request: pb.GetBookingRequest, context: Context
    ) -> pb.GetBookingResponse:
        record = await self._booking(request.booking_id)
        return pb.GetBookingResponse(booking=self._desk.message(record, self._live.now()))

    async def ListBookings(
        self, request: pb.ListBookingsRequest, context: Context
    ) -> pb.ListBookingsResponse:
        party_id = validation.ident(request.party_id, "party_id")
        party = self._caller_party()
        if party is not None and party != party_id:
            raise PermissionDenied("not allowed to see another party's bookings")
        attraction = self._attraction(request.attraction_id) if request.attraction_id else ""
        size = paging.page_size(request.page.page_size)
        last = paging.decode("bookings", request.page.page_token)
        after = None
        if last is not None:
            try:
                after = (datetime.fromisoformat(str(last[0])), validation.ident(str(last[1]), "x"))
            except (ValueError, IndexError, InvalidArgument):
                raise InvalidArgument("page.page_token", "not a token from this list") from None
        statuses = None if request.include_inactive else list(rules.ACTIVE)
        records = await self._store.list_bookings(party_id, attraction, statuses, after, size + 1)
        token = paging.next_token(
            "bookings", records, size, lambda r: [r.created_at.isoformat(), r.booking_id]
        )
        now = self._live.now()
        return pb.ListBookingsResponse(
            bookings=[self._desk.message(r, now) for r in records[:size]], next_page_token=token
        )

    # --- the stream ---------------------------------------------------------------

    async def WatchQueueEvents(
        self, request: pb.WatchQueueEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchQueueEventsResponse]:
        kinds: list[str] = []
        for i, kind in enumerate(request.kinds):
            if kind not in EVENT_KINDS:
                raise InvalidArgument(f"kinds[{i}]", "not a defined event kind")
            kinds.append(EVENT_KINDS[kind])
        wanted = set(self._attractions(request.attraction_ids))
        after = events.start_cursor(request.start)
        key = next(iter(wanted)) if len(wanted) == 1 else None
        async for event in self._hub.subscribe(after, kinds or None, key):
            if wanted and event.key not in wanted:
                continue
            response = pb.WatchQueueEventsResponse.FromString(event.payload)
            response.cursor = event.cursor.encode()
            response.occurred_at.FromDatetime(event.occurred_at)
            if event.traceparent:
                response.traceparent = event.traceparent
            yield response


def _decode_instant(last: list[Any] | None) -> datetime | None:
    if last is None:
        return None
    try:
        value = datetime.fromisoformat(str(last[0]))
    except (ValueError, IndexError):
        raise InvalidArgument("page.page_token", "not a token from this list") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)

"""Records and twin figures <-> protobuf messages."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.queue.forecast import SLOT, SlotForecast
from services.queue.store import BookingRecord, HistoryRow
from venue.common.v1 import common_pb2
from venue.queue.v1 import queue_pb2 as pb


def instant(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def seconds(at: datetime) -> float:
    return at.timestamp()


def ts(value: float | datetime | None) -> Timestamp:
    stamp = Timestamp()
    if value is None:
        return stamp
    if isinstance(value, datetime):
        stamp.FromDatetime(value)
    else:
        stamp.FromNanoseconds(round(value * 1e9))
    return stamp


def dur(value: float | None) -> Duration:
    duration = Duration()
    if value is not None and math.isfinite(value):
        duration.FromNanoseconds(round(max(value, 0.0)) * 1_000_000_000)
    return duration


def time_range(
    start: float | datetime | None, end: float | datetime | None
) -> common_pb2.TimeRange:
    if start is None or end is None:
        return common_pb2.TimeRange()
    return common_pb2.TimeRange(start=ts(start), end=ts(end))


def forecast_message(
    attraction_id: str, slots: list[SlotForecast], computed_at: float
) -> pb.AttractionForecast:
    return pb.AttractionForecast(
        attraction_id=attraction_id,
        slots=[
            pb.ForecastSlot(
                start=ts(s.start),
                wait=dur(s.wait),
                wait_low=dur(s.low),
                wait_high=dur(s.high),
                expected_status=s.status,  # type: ignore[arg-type]
            )
            for s in slots
        ],
        computed_at=ts(computed_at),
    )


SLOT_LENGTH = dur(SLOT)


def booking_message(record: BookingRecord, estimated_call_at: float | None = None) -> pb.Booking:
    message = pb.Booking(
        booking_id=record.booking_id,
        kind=record.kind,  # type: ignore[arg-type]
        status=record.status,  # type: ignore[arg-type]
        attraction_id=record.attraction_id,
        party_id=record.party_id,
        guest_ids=record.guest_ids,
        boarding_group=record.boarding_group,
        entitlement_ids=[g.entitlement_id for g in record.guests],
        rebooked_from_booking_id=record.rebooked_from,
        created_at=ts(record.created_at),
        cancel_reason=record.cancel_reason,  # type: ignore[arg-type]
    )
    if record.window_start is not None and record.window_end is not None:
        message.window.CopyFrom(time_range(record.window_start, record.window_end))
    if record.called_at is not None:
        message.called_at.CopyFrom(ts(record.called_at))
    if record.cancelled_at is not None:
        message.cancelled_at.CopyFrom(ts(record.cancelled_at))
    if estimated_call_at is not None and record.status == pb.BOOKING_STATUS_WAITING:
        message.estimated_call_at.CopyFrom(ts(estimated_call_at))
    return message


def sample_message(row: HistoryRow) -> pb.WaitSample:
    sample = pb.WaitSample(
        at=ts(row.at),
        status=row.status,  # type: ignore[arg-type]
        standby_line_length=row.standby_line_length,
        throughput_per_hour=row.throughput_per_hour,
    )
    if row.posted_wait_s is not None:
        sample.posted_wait.CopyFrom(dur(row.posted_wait_s))
    if row.measured_wait_s is not None:
        sample.measured_wait.CopyFrom(dur(row.measured_wait_s))
    return sample

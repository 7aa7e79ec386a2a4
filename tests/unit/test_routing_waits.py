"""What routing keeps from the queue and location streams, and the join segments it
plans with."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.routing.crowding import CrowdBoard
from services.routing.follow import apply_occupancy, apply_queue_event
from services.routing.waits import (
    DOWN_ASSUMED_SECONDS,
    ESTIMATE_MAX_SECONDS,
    ESTIMATE_MIN_SECONDS,
    QueueBook,
    Status,
    WaitSource,
    estimated_wait_seconds,
)
from services.venue_model import Venue, load_venue
from venue.location.v1 import location_pb2
from venue.queue.v1 import queue_pb2

ROOT = Path(__file__).resolve().parents[2]
OPEN, CLOSE = 1_000_000.0, 1_000_000.0 + 12 * 3600


@pytest.fixture(scope="module")
def park() -> Venue:
    return load_venue(ROOT / "venues" / "lantern-bay-park.yaml")


def stamp(seconds: float) -> Timestamp:
    return Timestamp(seconds=int(seconds), nanos=round((seconds % 1) * 1e9))


def event(at: float, **oneof: object) -> queue_pb2.WatchQueueEventsResponse:
    message = queue_pb2.WatchQueueEventsResponse(cursor="c", **oneof)  # type: ignore[arg-type]
    message.occurred_at.CopyFrom(stamp(at))
    return message


def forecast_event(
    attraction: str, computed: float, waits: list[float], down: tuple[int, ...] = ()
) -> queue_pb2.WatchQueueEventsResponse:
    forecast = queue_pb2.AttractionForecast(attraction_id=attraction, computed_at=stamp(computed))
    for k, wait in enumerate(waits):
        forecast.slots.append(
            queue_pb2.ForecastSlot(
                start=stamp(OPEN + k * 900),
                wait=Duration(seconds=int(wait * 60)),
                expected_status=queue_pb2.ATTRACTION_STATUS_DOWN
                if k in down
                else queue_pb2.ATTRACTION_STATUS_OPEN,
            )
        )
    return event(computed, forecast_changed=queue_pb2.ForecastChanged(forecast=forecast))


def test_capacity_estimate_is_bounded_and_ignores_demand(park: Venue) -> None:
    for poi in park.attractions():
        wait = estimated_wait_seconds(park, poi)
        assert ESTIMATE_MIN_SECONDS <= wait <= ESTIMATE_MAX_SECONDS
    assert estimated_wait_seconds(park, park.shows()[0]) == 0.0


def test_forecast_slots_become_segments_and_the_ends_hold(park: Venue) -> None:
    ride = park.attractions()[0]
    book = QueueBook()
    apply_queue_event(book, forecast_event(ride.id, OPEN, [10, 20, 30]))
    segments = book.standby_segments(park, ride, OPEN, CLOSE, OPEN - 600, CLOSE)
    assert [(s.start - OPEN, s.wait_seconds / 60) for s in segments] == [
        (0, 10),
        (900, 20),
        (1800, 30),
    ]
    # Opening hours bound the first; the last slot's wait holds to closing.
    assert segments[-1].end == CLOSE
    assert all(s.source is WaitSource.FORECAST for s in segments)


def test_without_a_forecast_the_estimate_covers_the_hours(park: Venue) -> None:
    ride = park.attractions()[0]
    (segment,) = QueueBook().standby_segments(park, ride, OPEN, CLOSE, OPEN + 60, CLOSE + 60)
    assert (segment.start, segment.end) == (OPEN + 60, CLOSE)
    assert segment.source is WaitSource.ESTIMATE
    assert segment.wait_seconds == estimated_wait_seconds(park, ride)


def test_down_closed_and_reopened(park: Venue) -> None:
    ride = park.attractions()[0]
    book = QueueBook()
    apply_queue_event(book, forecast_event(ride.id, OPEN, [10] * 8))
    down_at = OPEN + 1000
    apply_queue_event(
        book,
        event(
            down_at,
            status_changed=queue_pb2.StatusChanged(
                attraction_id=ride.id, status=queue_pb2.ATTRACTION_STATUS_DOWN
            ),
        ),
    )
    assert not book.operating_at(ride.id, down_at + 60)
    assert book.operating_at(ride.id, down_at + DOWN_ASSUMED_SECONDS)
    segments = book.standby_segments(park, ride, OPEN, CLOSE, OPEN, CLOSE)
    assert not any(s.start < down_at + 60 < s.end for s in segments)
    # A later OPEN clears it; an older event does not undo the newer one.
    apply_queue_event(
        book,
        event(
            down_at + 300,
            status_changed=queue_pb2.StatusChanged(
                attraction_id=ride.id, status=queue_pb2.ATTRACTION_STATUS_OPEN
            ),
        ),
    )
    apply_queue_event(
        book,
        event(
            down_at,
            status_changed=queue_pb2.StatusChanged(
                attraction_id=ride.id, status=queue_pb2.ATTRACTION_STATUS_DOWN
            ),
        ),
    )
    assert book.statuses[ride.id].status is Status.OPEN
    assert book.operating_at(ride.id, down_at + 400)
    # Closed for the weather: nothing for the rest of the day; closed for the
    # night (scheduled hours) changes nothing the hours do not already say.
    apply_queue_event(
        book,
        event(
            down_at + 600,
            status_changed=queue_pb2.StatusChanged(
                attraction_id=ride.id,
                status=queue_pb2.ATTRACTION_STATUS_CLOSED,
                reason=queue_pb2.STATUS_REASON_WEATHER,
            ),
        ),
    )
    assert not book.standby_segments(park, ride, OPEN, CLOSE, down_at + 600, CLOSE)
    apply_queue_event(
        book,
        event(
            down_at + 700,
            status_changed=queue_pb2.StatusChanged(
                attraction_id=ride.id,
                status=queue_pb2.ATTRACTION_STATUS_CLOSED,
                reason=queue_pb2.STATUS_REASON_SCHEDULED_HOURS,
            ),
        ),
    )
    assert book.standby_segments(park, ride, OPEN, CLOSE, down_at + 700, CLOSE)


def test_forecast_down_slots_and_a_reopening_after_it(park: Venue) -> None:
    ride = park.attractions()[1]
    book = QueueBook()
    apply_queue_event(book, forecast_event(ride.id, OPEN, [10, 10, 10, 10], down=(1, 2)))
    segments = book.standby_segments(park, ride, OPEN, CLOSE, OPEN, CLOSE)
    assert [round((s.start - OPEN) / 900) for s in segments] == [0, 3]
    apply_queue_event(
        book,
        event(
            OPEN + 1000,
            status_changed=queue_pb2.StatusChanged(
                attraction_id=ride.id, status=queue_pb2.ATTRACTION_STATUS_OPEN
            ),
        ),
    )
    reopened = book.standby_segments(park, ride, OPEN, CLOSE, OPEN, CLOSE)
    assert any(s.start == OPEN + 1000 and s.source is WaitSource.ESTIMATE for s in reopened)


def test_older_forecasts_and_replays_change_nothing(park: Venue) -> None:
    ride = park.attractions()[0]
    book = QueueBook()
    newer = forecast_event(ride.id, OPEN + 60, [5])
    apply_queue_event(book, newer)
    apply_queue_event(book, forecast_event(ride.id, OPEN, [50]))
    apply_queue_event(book, newer)
    assert book.forecasts[ride.id].slots[0].wait_seconds == 300


def test_posted_waits_and_occupancy(park: Venue) -> None:
    ride = park.attractions()[0]
    book = QueueBook()
    apply_queue_event(
        book,
        event(
            OPEN,
            wait_changed=queue_pb2.WaitChanged(
                attraction_id=ride.id, posted_wait=Duration(seconds=1200)
            ),
        ),
    )
    assert book.posted[ride.id].seconds == 1200
    board = CrowdBoard(park)
    message = location_pb2.WatchLocationEventsResponse(
        cursor="x",
        occupancy_changed=location_pb2.OccupancyChanged(zone_id=ride.zone, density=1.2),
    )
    message.occurred_at.CopyFrom(stamp(OPEN))
    apply_occupancy(board, message)
    apply_occupancy(board, message)
    assert board.density(ride.zone) == 1.2
    assert board.version == 1

"""The hot paths' ids and timestamps are exactly what the library would make."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from services.access.ids import new_id, timestamp_of
from services.platform.validation import to_timestamp


def test_new_ids_are_random_version_4_uuids_in_canonical_form() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.one_of(
            st.none(),
            st.just(UTC),
            st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
        ),
    )
)
def test_timestamps_match_from_datetime(value: datetime) -> None:
    assert timestamp_of(value) == to_timestamp(value)

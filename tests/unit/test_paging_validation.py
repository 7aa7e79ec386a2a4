"""Page tokens and field checks: bad input names its field."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from services.platform import paging, validation
from services.platform.errors import InvalidArgument
from services.platform.events import ORIGIN, Cursor


@given(st.lists(st.one_of(st.integers(), st.text(max_size=20)), max_size=4))
def test_page_token_round_trips(key: list[object]) -> None:
    assert paging.decode("bands", paging.encode("bands", key)) == key


def test_page_token_of_another_list_is_refused() -> None:
    token = paging.encode("bands", ["x"])
    with pytest.raises(InvalidArgument) as err:
        paging.decode("devices", token)
    assert err.value.field == "page.page_token"


@given(st.text(max_size=40))
def test_garbage_page_tokens_are_refused_or_empty(token: str) -> None:
    try:
        paging.decode("bands", token)
    except InvalidArgument as err:
        assert err.field == "page.page_token"


def test_page_size_is_capped_and_defaulted() -> None:
    assert paging.page_size(0) == paging.DEFAULT_PAGE
    assert paging.page_size(10_000) == paging.MAX_PAGE
    with pytest.raises(InvalidArgument):
        paging.page_size(-1)


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_stream_cursor_round_trips(txid: int, seq: int) -> None:
    assert Cursor.decode(Cursor(txid, seq).encode()) == Cursor(txid, seq)


@given(st.text(max_size=30))
def test_garbage_cursors_are_refused(token: str) -> None:
    try:
        cursor = Cursor.decode(token)
    except InvalidArgument as err:
        assert err.field == "start.cursor"
    else:
        assert cursor == ORIGIN or token


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "required"), ("x" * 201, "at most"), ("bad\x00name", "control")],
)
def test_text_checks(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as err:
        validation.text(value, "display_name")
    assert err.value.field == "display_name"


def test_ids_are_canonical_uuids() -> None:
    assert validation.ident("6F9619FF-8B86-D011-B42D-00CF4FC964FF", "guest_id") == (
        "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
    )
    with pytest.raises(InvalidArgument) as err:
        validation.ident("not-an-id", "guest_id")
    assert err.value.field == "guest_id"


def test_timestamps_far_away_are_refused() -> None:
    ts = Timestamp(seconds=10**11)
    with pytest.raises(InvalidArgument, match="2000-2100"):
        validation.timestamp(ts, "tapped_at")
    assert validation.timestamp(Timestamp(), "tapped_at", required=False) is None
    with pytest.raises(InvalidArgument, match="required"):
        validation.timestamp(Timestamp(), "tapped_at")

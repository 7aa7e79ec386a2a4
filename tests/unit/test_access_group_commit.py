"""Group commit: concurrent writes share a round trip, each gets its own
result only after its group's flush, and a failed flush fails exactly the
writes it carried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from services.access.group_commit import GroupCommit
from services.access.servicer import hot_digest
from services.platform.idempotency import request_hash
from services.platform.validation import to_timestamp
from venue.access.v1 import access_pb2 as pb
from venue.common.v1 import common_pb2


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.fail_on = fail_on

    async def flush(self, writes: Sequence[int]) -> list[int]:
        self.groups.append(list(writes))
        await self.gate.wait()
        if self.fail_on is not None and self.fail_on in writes:
            raise RuntimeError("flush failed")
        return [w * 10 for w in writes]


async def test_a_lone_write_goes_at_once() -> None:
    recorder = Recorder()
    recorder.gate.set()
    commit = GroupCommit(recorder.flush)
    assert await commit.submit(7) == 70
    assert recorder.groups == [[7]]


async def test_writes_queued_behind_a_flush_leave_together() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.flush, max_group=64, max_in_flight=1)
    first = asyncio.ensure_future(commit.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(commit.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)
    # Nothing answers before its flush has returned.
    assert not first.done() and not any(f.done() for f in rest)
    recorder.gate.set()
    assert await first == 10
    assert [await f for f in rest] == [i * 10 for i in range(2, 12)]
    assert recorder.groups == [[1], list(range(2, 12))]


async def test_groups_are_bounded_and_flushes_in_flight_are_bounded() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.flush, max_group=4, max_in_flight=2)
    futures = [asyncio.ensure_future(commit.submit(i)) for i in range(10)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(recorder.groups) == 2  # two in flight, the rest waits
    recorder.gate.set()
    assert [await f for f in futures] == [i * 10 for i in range(10)]
    assert all(len(g) <= 4 for g in recorder.groups)
    assert sorted(w for g in recorder.groups for w in g) == list(range(10))
    assert commit.writes == 10 and commit.groups == len(recorder.groups)


async def test_a_failed_flush_fails_its_own_writes_only() -> None:
    recorder = Recorder(fail_on=1)
    commit = GroupCommit(recorder.flush, max_in_flight=1)
    first = asyncio.ensure_future(commit.submit(1))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(commit.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    recorder.gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert [await f for f in later] == [20, 30]
    # The committer keeps working after a failure.
    assert await commit.submit(4) == 40


async def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.flush, max_in_flight=1)
    first = asyncio.ensure_future(commit.submit(1))
    await asyncio.sleep(0)
    quitter = asyncio.ensure_future(commit.submit(2))
    stayer = asyncio.ensure_future(commit.submit(3))
    await asyncio.sleep(0)
    quitter.cancel()
    recorder.gate.set()
    assert await first == 10
    assert await stayer == 30
    assert quitter.cancelled()


def test_the_hot_paths_digest_is_the_platforms_request_hash() -> None:
    tap = pb.TapRequest(
        access_point_id="ap-1",
        band_uid="BAND-1",
        tapped_at=to_timestamp(datetime(2026, 7, 1, 10, tzinfo=UTC)),
        idempotency_key="k1",
    )
    charge = pb.ChargeRequest(
        merchant_id="m",
        band_uid="BAND-1",
        amount=common_pb2.Money(minor_units=450, currency="USD"),
        pin="1234",
        idempotency_key="k2",
    )
    for request in (tap, charge):
        before = request.SerializeToString()
        assert hot_digest(request) == request_hash(request)
        # The request is left as it came.
        assert request.SerializeToString() == before
    other = pb.TapRequest()
    other.CopyFrom(tap)
    other.idempotency_key = "another key"
    assert hot_digest(other) == hot_digest(tap)
    other.band_uid = "BAND-2"
    assert hot_digest(other) != hot_digest(tap)

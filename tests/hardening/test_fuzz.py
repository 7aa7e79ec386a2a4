"""Bad input, from every side, to every RPC of every running service.

Each unary RPC gets hypothesis-built requests (see strategies.py) and bytes that
are not protobuf, from the most privileged caller its policy admits, against the
suite as real processes. The bar, per call: never INTERNAL or UNKNOWN, the
process still up, an INVALID_ARGUMENT names its field, and a refused call wrote
nothing (row counts of the service's tables before and after). Streaming RPCs get
hostile requests, malformed messages mid-stream and early cancellation.

`make test` runs a few examples per RPC; `make fuzz` runs many
(VENUE_FUZZ_EXAMPLES) and writes the figures to bench/results/fuzz.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.hardening.conftest import Hardened, Outcome, bad_request_fields
from tests.hardening.expectations import expectations
from tests.hardening.rpcs import Rpc, all_rpcs, rpc
from tests.hardening.strategies import messages, raw_bytes
from tests.support.stubs import bad_fields

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("VENUE_FUZZ_EXAMPLES", "4"))
RESULTS = os.environ.get("VENUE_FUZZ_RESULTS", "")
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# A refusal that must have written nothing. (OK, ABORTED and UNAVAILABLE may
# legitimately have done work; DEADLINE_EXCEEDED is reported on its own.)
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
}

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # Each example is a real call: no shrinking, the failing request is printed.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

UNARY = [r.key for r in all_rpcs() if r.unary]
STREAMING = [r.key for r in all_rpcs() if not r.unary]

# service -> figures; written out when the module is done.
FIGURES: dict[str, Counter[str]] = defaultdict(Counter)
STATUSES: dict[str, Counter[str]] = defaultdict(Counter)


@pytest.fixture(scope="module", autouse=True)
def report_figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    started = time.monotonic()
    yield
    summary: dict[str, Any] = {
        "examples_per_rpc": EXAMPLES,
        "seconds": round(time.monotonic() - started, 1),
        "services": {
            s: {**dict(FIGURES[s]), "statuses": dict(STATUSES[s])} for s in sorted(FIGURES)
        },
        "total_inputs": sum(f["inputs"] for f in FIGURES.values()),
        "internal_or_unknown": sum(f["internal_or_unknown"] for f in FIGURES.values()),
    }
    text = json.dumps(summary, indent=2, sort_keys=True)
    (tmp_path_factory.getbasetemp() / "fuzz.json").write_text(text)
    if RESULTS:
        Path(RESULTS).parent.mkdir(parents=True, exist_ok=True)
        Path(RESULTS).write_text(text + "\n")


def _record(target: Rpc, outcome: Outcome, what: str) -> None:
    figures = FIGURES[target.service]
    figures["inputs"] += 1
    figures[what] += 1
    STATUSES[target.service][outcome.code.name] += 1
    if outcome.code in FORBIDDEN:
        figures["internal_or_unknown"] += 1


def _shown(message: Any) -> str:
    text = repr(message)
    return text if len(text) < 600 else text[:600] + f"... ({len(text)} chars)"


async def _check(
    hardened: Hardened,
    target: Rpc,
    outcome: Outcome,
    before: dict[str, int],
    request: Any,
    check_writes: bool = True,
) -> None:
    where = f"{target.key} with {_shown(request)}"
    assert outcome.code not in FORBIDDEN, f"{where}: {outcome.code.name} {outcome.details}"
    assert outcome.code != grpc.StatusCode.DEADLINE_EXCEEDED, f"{where}: no answer in time"
    assert hardened.alive(target.service), f"{target.service} died on {where}"
    if outcome.code == grpc.StatusCode.INVALID_ARGUMENT:
        named = bad_fields(outcome.error) if outcome.error is not None else outcome.fields
        assert named, f"{where}: INVALID_ARGUMENT names no field: {outcome.details}"
    if check_writes and outcome.code in REFUSALS:
        after = await hardened.row_counts(target.service)
        ignored = expectations(target.service).background_tables
        changed = {
            t: (before.get(t), n)
            for t, n in after.items()
            if before.get(t) != n and t not in ignored
        }
        assert not changed, f"{where}: refused with {outcome.code.name} but wrote {changed}"


@pytest.mark.parametrize("key", UNARY)
@FUZZ_SETTINGS
@given(data=st.data())
async def test_unary_rpc_survives_hostile_requests(
    hardened: Hardened, key: str, data: st.DataObject
) -> None:
    target = rpc(key)
    if target.service not in hardened.services:
        pytest.skip(f"{target.service} is not running")
    caller = hardened.caller_for(target)
    request = data.draw(messages(target.input, hardened.fuzz_ids), label="request")
    before = await hardened.row_counts(target.service)
    outcome = await hardened.unary(target, request.SerializeToString(), caller)
    _record(target, outcome, "messages")
    await _check(hardened, target, outcome, before, request)

    raw = data.draw(raw_bytes(), label="raw")
    before = await hardened.row_counts(target.service)
    outcome = await hardened.unary(target, raw, caller)
    _record(target, outcome, "raw_bytes")
    await _check(hardened, target, outcome, before, raw)


async def _first_reply(call: Any, wait: float) -> Outcome:
    """The status a stream ends with, or OK once it delivers or stays open."""
    try:
        await asyncio.wait_for(call.read(), wait)
    except TimeoutError:
        pass
    except grpc.aio.AioRpcError as err:
        return Outcome(err.code(), details=err.details() or "", error=err)
    if call.done():
        code = await call.code()
        fields = bad_request_fields(await call.trailing_metadata())
        return Outcome(code, details=await call.details() or "", fields=fields)
    call.cancel()
    return Outcome(grpc.StatusCode.OK)


@pytest.mark.parametrize("key", STREAMING)
@settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 2, 3))
@given(data=st.data())
async def test_streaming_rpc_survives_hostile_requests(
    hardened: Hardened, key: str, data: st.DataObject
) -> None:
    target = rpc(key)
    if target.service not in hardened.services:
        pytest.skip(f"{target.service} is not running")
    caller = hardened.caller_for(target)
    metadata = hardened.metadata(caller)
    channel = hardened.channel(target.service)
    request = data.draw(messages(target.input, hardened.fuzz_ids), label="request")
    raw = data.draw(raw_bytes(), label="raw")
    before = await hardened.row_counts(target.service)

    open_call: Any
    if target.client_streaming:
        open_call = channel.stream_stream(target.path)
        extra = data.draw(st.lists(messages(target.input, hardened.fuzz_ids), max_size=3))

        async def requests(*items: bytes) -> AsyncIterator[bytes]:
            for item in items:
                yield item
            await asyncio.sleep(0.3)

        bodies = [request.SerializeToString(), *(m.SerializeToString() for m in extra)]
        sent: list[Any] = [
            (requests(*bodies), request),
            # A malformed message after good ones: the stream must end cleanly.
            (requests(*bodies, raw), raw),
        ]
    else:
        open_call = channel.unary_stream(target.path)
        sent = [(request.SerializeToString(), request), (raw, raw)]

    for body, shown in sent:
        call = open_call(body, metadata=metadata)
        outcome = await _first_reply(call, 0.5)
        _record(target, outcome, "streams")
        # A client stream's good messages are acknowledged and kept before a bad
        # one ends it: only a single request must have written nothing.
        await _check(hardened, target, outcome, before, shown, not target.client_streaming)

    # Cancelled at once, before the server has answered anything.
    call = open_call(sent[0][0] if not target.client_streaming else requests(), metadata=metadata)
    call.cancel()
    FIGURES[target.service]["cancelled_streams"] += 1
    FIGURES[target.service]["inputs"] += 1
    await asyncio.sleep(0.05)
    assert hardened.alive(target.service)


async def test_every_service_still_serves_after_the_fuzzing(hardened: Hardened) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    for service in hardened.services:
        assert hardened.alive(service), f"{service} is not running"
        stub = health_pb2_grpc.HealthStub(hardened.channel(service))
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert sum(f["internal_or_unknown"] for f in FIGURES.values()) == 0

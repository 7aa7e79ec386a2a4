"""Limits per caller, against the running suite: a guest's app past its rate is
refused with RESOURCE_EXHAUSTED (with RetryInfo and QuotaFailure) while other
callers go on; a message past the server's size cap is RESOURCE_EXHAUSTED and
the service stays up."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.platform.server import MAX_MESSAGE_BYTES
from tests.hardening.conftest import Hardened, make_person, retry_delay
from tests.hardening.rpcs import all_rpcs
from tests.support.stubs import bearer
from venue.identity.v1 import identity_pb2 as ipb

pytestmark = pytest.mark.e2e

# The suite runs with the default limits (ratelimit.py): 20 calls/s, burst 40.
GUEST_BURST = 40


async def test_a_guest_past_its_rate_is_refused_and_told_when_to_retry(
    hardened: Hardened,
) -> None:
    identity = hardened.identity()
    access = hardened.access() if "access" in hardened.services else None
    desk = hardened.tokens["staff:desk"]
    greedy = await make_person(identity, access, hardened.admin, desk, "USD")
    patient = await make_person(identity, access, hardened.admin, desk, "USD")

    async def get(person_token: str, guest_id: str) -> grpc.StatusCode | grpc.aio.AioRpcError:
        try:
            await identity.GetGuest(
                ipb.GetGuestRequest(guest_id=guest_id), metadata=bearer(person_token), timeout=10
            )
        except grpc.aio.AioRpcError as err:
            return err
        return grpc.StatusCode.OK

    results = await asyncio.gather(*(get(greedy.token, greedy.guest_id) for _ in range(120)))
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    admitted = len(results) - len(refused)
    assert refused, "120 calls at once from one guest were all admitted"
    assert all(r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for r in refused), {
        r.code().name for r in refused
    }
    # The burst, plus what refilled while the calls were arriving.
    assert GUEST_BURST <= admitted < len(results)
    err = refused[0]
    delay = retry_delay(err)
    assert delay is not None and 0 < delay <= 1.0, delay
    status = rpc_status.from_call(err)
    assert status is not None
    quota = [d for d in status.details if d.Is(error_details_pb2.QuotaFailure.DESCRIPTOR)]
    assert quota, "no QuotaFailure detail"

    # Another guest is not held back by the first one's spree...
    assert await get(patient.token, patient.guest_id) == grpc.StatusCode.OK
    # ...and the first gets through again once it waits as told.
    await asyncio.sleep(delay + 0.05)
    assert await get(greedy.token, greedy.guest_id) == grpc.StatusCode.OK
    hardened.figures["rate_limit"] = {
        "calls_at_once": len(results),
        "admitted": admitted,
        "refused": len(refused),
        "retry_after_s": round(delay, 3),
    }


async def test_an_oversized_message_is_refused_and_the_service_stays_up(
    hardened: Hardened,
) -> None:
    checked = []
    for service in hardened.services:
        target = next(
            r
            for r in all_rpcs()
            if r.service == service
            and r.unary
            and r.input.fields
            # A string field to stuff; the request never gets as far as parsing.
            and any(f.type == f.TYPE_STRING for f in r.input.fields)
        )
        field = next(f for f in target.input.fields if f.type == f.TYPE_STRING)
        request = target.request(**{field.name: "x" * (MAX_MESSAGE_BYTES + 1024)})
        caller = hardened.caller_for(target)
        outcome = await hardened.unary(target, request.SerializeToString(), caller)
        assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED, (
            f"{target.key}: {outcome.code.name} {outcome.details}"
        )
        assert hardened.alive(service)
        small = await hardened.unary(target, target.request().SerializeToString(), caller)
        assert small.code not in {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
        checked.append(target.key)
    hardened.figures["oversized_message_refused"] = checked

"""Small helpers for tests that call services over real sockets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status code a call ends with (OK when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def expect_error(
    call: Awaitable[Any], code: grpc.StatusCode, field: str | None = None
) -> grpc.aio.AioRpcError:
    """Assert the call fails with `code` (and, for INVALID_ARGUMENT, names `field`)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    err = info.value
    assert err.code() == code, f"expected {code.name}, got {err.code().name}: {err.details()}"
    if field is not None:
        assert field in bad_fields(err), f"{field!r} not named in {bad_fields(err)}"
    return err


def bad_fields(err: grpc.aio.AioRpcError) -> list[str]:
    """The fields a google.rpc.BadRequest detail names."""
    status = rpc_status.from_call(err)
    found: list[str] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [v.field for v in bad.field_violations]
    return found


Call = Callable[..., Awaitable[Any]]

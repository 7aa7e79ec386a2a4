"""A diagnostic echo service on the full platform (auth, tracing, logging,
deadline guard, error mapping), with no domain logic of its own.

The platform's tests use it to prove the bootstrap (health, reflection, auth,
error details, draining on SIGTERM); the benchmarks compare it with a bare
grpc.aio echo to measure what the platform itself costs per call. Its methods
carry raw bytes, so it needs no proto of its own.

  python -m services.platform.echo   (VENUE_ECHO_ADDR=127.0.0.1:PORT)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc

from services.platform import errors
from services.platform.config import Settings
from services.platform.principal import ALL_DEVICES, ALL_STAFF, caller
from services.platform.principal import allow as allow_
from services.platform.server import Runtime, ServiceDefinition, main
from services.platform.tokens import TokenVerifier, local_verifier_for

SERVICE = "venue.diagnostics.Echo"

_anyone_signed_in = allow_(
    guests=True, devices=ALL_DEVICES, staff=ALL_STAFF, services=["access", "location"]
)
POLICY = {
    "Echo": _anyone_signed_in,
    "Slow": _anyone_signed_in,
    "Fail": _anyone_signed_in,
    "WhoAmI": _anyone_signed_in,
    "StaffOnly": allow_(staff=ALL_STAFF),
    "Public": allow_(anonymous=True),
}

# Fail: the request names the error to raise.
FAILURES: dict[bytes, Callable[[], Exception]] = {
    b"invalid": lambda: errors.InvalidArgument("amount", "must be positive"),
    b"not_found": lambda: errors.NotFound("guest", "g-1"),
    b"precondition": lambda: errors.FailedPrecondition(
        "band is deactivated", reason="BAND_DEACTIVATED", subject="band"
    ),
    b"exhausted": lambda: errors.ResourceExhausted("too many pings", subject="reader"),
    b"surprise": lambda: RuntimeError("secret detail that must not reach the caller"),
}


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def _slow(request: bytes, context: Any) -> bytes:
    # The request is the number of milliseconds to take.
    await asyncio.sleep(int(request or b"0") / 1000)
    return b"done:" + request


async def _fail(request: bytes, context: Any) -> bytes:
    raise FAILURES.get(request, FAILURES[b"surprise"])()


async def _who_am_i(request: bytes, context: Any) -> bytes:
    who = caller()
    return json.dumps({"kind": who.kind.value, "subject": who.subject}).encode()


def _handlers() -> grpc.GenericRpcHandler:
    identity: Callable[[bytes], bytes] = lambda b: b  # noqa: E731 - raw bytes in and out
    methods = {
        "Echo": _echo,
        "Slow": _slow,
        "Fail": _fail,
        "WhoAmI": _who_am_i,
        "StaffOnly": _echo,
        "Public": _echo,
    }
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=identity, response_serializer=identity
            )
            for name, fn in methods.items()
        },
    )


async def local_verifier(settings: Settings) -> TokenVerifier:
    return local_verifier_for(settings.data_dir)


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((_handlers(),))

    return register


DEFINITION = ServiceDefinition(
    name="echo",
    proto_service=SERVICE,
    policy=POLICY,
    setup=setup,
    verifier=local_verifier,
    follows_revocations=False,
)

if __name__ == "__main__":
    main(DEFINITION)

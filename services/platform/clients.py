"""Calling other services: channels with a service token, a deadline derived from
the caller's remaining time, tracing, and retries of UNAVAILABLE.

Every outgoing unary call carries a deadline: what is left of the inbound call's
deadline (less a margin for the reply), or a default outside a call.
Streams (Watch) are long-lived and carry none.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from services.platform import tls
from services.platform.callctx import remaining
from services.platform.config import Settings

# gRPC's own retry: UNAVAILABLE means the call was not processed, or that it was
# an idempotent write whose key makes the retry safe.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

CHANNEL_OPTIONS = [
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]

TokenGetter = Callable[[], Awaitable[str]]


def _details(
    details: grpc.aio.ClientCallDetails, metadata: list[tuple[str, str]], timeout: float | None
) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=timeout,
        metadata=grpc.aio.Metadata(*metadata),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _Outgoing:
    def __init__(self, token: TokenGetter | None, default_timeout: float) -> None:
        self._token = token
        self._default = default_timeout

    async def _prepare(
        self, details: grpc.aio.ClientCallDetails, streaming: bool
    ) -> grpc.aio.ClientCallDetails:
        metadata = [(str(k), str(v)) for k, v in (details.metadata or ())]
        if self._token is not None and not any(k == "authorization" for k, _ in metadata):
            metadata.append(("authorization", f"Bearer {await self._token()}"))
        timeout = details.timeout
        if not streaming:
            # Leave the caller a little time to answer its own caller.
            budget = max(remaining(self._default) - 0.005, 0.001)
            timeout = budget if timeout is None else min(timeout, budget)
        return _details(details, metadata, timeout)


class OutgoingUnaryUnary(_Outgoing, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._prepare(details, streaming=False), request)


class OutgoingUnaryStream(_Outgoing, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._prepare(details, streaming=True), request)


class OutgoingStreamUnary(_Outgoing, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(await self._prepare(details, streaming=False), requests)


class OutgoingStreamStream(_Outgoing, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(await self._prepare(details, streaming=True), requests)


def open_channel(
    target: str,
    token: TokenGetter | None = None,
    default_timeout: float = 5.0,
    traced: bool = True,
    secure: tls.Tls | None = None,
) -> grpc.aio.Channel:
    interceptors: list[Any] = [
        cls(token, default_timeout)
        for cls in (
            OutgoingUnaryUnary,
            OutgoingUnaryStream,
            OutgoingStreamUnary,
            OutgoingStreamStream,
        )
    ]
    if traced:
        interceptors += aio_client_interceptors()  # type: ignore[no-untyped-call]
    return tls.channel(target, secure, options=CHANNEL_OPTIONS, interceptors=interceptors)


def service_tls(settings: Settings) -> tls.Tls | None:
    """This service's TLS towards the others (None: plaintext), from VENUE_TLS_*."""
    return tls.for_service(settings.service, settings.extra)


class ServiceToken:
    """This service's bearer token, renewed at identity before it runs out."""

    def __init__(self, settings: Settings, secret: str) -> None:
        self._settings = settings
        self._secret = secret
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self._channel: grpc.aio.Channel | None = None

    async def __call__(self) -> str:
        if time.time() < self._renew_at:
            return self._token
        async with self._lock:
            if time.time() >= self._renew_at:
                await self._renew()
        return self._token

    async def _renew(self) -> None:
        # Imported here: the generated code is not needed to import the platform.
        from venue.identity.v1 import identity_pb2, identity_pb2_grpc  # noqa: PLC0415

        if self._channel is None:
            self._channel = open_channel(
                self._settings.addresses["identity"],
                traced=False,
                secure=service_tls(self._settings),
            )
        stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
        reply = await stub.IssueToken(
            identity_pb2.IssueTokenRequest(
                service_secret=identity_pb2.ServiceSecret(
                    service=self._settings.service, secret=self._secret
                )
            ),
            timeout=5.0,
        )
        self._token = reply.access_token
        lifetime = reply.expires_at.seconds - time.time()
        self._renew_at = time.time() + max(lifetime * 0.8, 1.0)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class Clients:
    """One channel per dependency, shared by every call of this process."""

    def __init__(self, settings: Settings, token: TokenGetter | None) -> None:
        self._settings = settings
        self._token = token
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tls = service_tls(settings)

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = open_channel(
                self._settings.addresses[service], self._token, secure=self._tls
            )
        return self._channels[service]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

"""Wrapping gRPC method handlers, for interceptors that run around the servicer.

A grpc.aio server interceptor returns a method handler; to run code around the
servicer in the call's own task (where context variables and spans live), it has
to wrap the handler's behavior. These helpers do it once for the four kinds of
handler, so each interceptor says only what it does around a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

from services.platform.errors import InvalidArgument

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
else:  # the class is generic only in the type stubs
    Handler = grpc.RpcMethodHandler

# A behavior with a single response: (request or request iterator, context) -> response.
UnaryBehavior = Callable[[Any, Any], Awaitable[Any]]
# A behavior with a response stream: (request or request iterator, context) -> async iterator.
StreamBehavior = Callable[[Any, Any], AsyncIterator[Any]]


def as_async_generator(behavior: Any) -> StreamBehavior:
    """A response-streaming behavior as an async generator, whichever form it has:
    an async generator, or a coroutine that writes with context.write (as the
    health and reflection servicers do)."""
    if inspect.isasyncgenfunction(behavior):
        return cast(StreamBehavior, behavior)

    async def adapted(request: Any, context: Any) -> AsyncIterator[Any]:
        result = behavior(request, context)
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            async for response in result:
                yield response

    return adapted


class Malformed:
    """Stands in for a request whose bytes are not the message they should be.

    grpc answers a request it cannot parse with UNKNOWN before any interceptor
    runs; parsing to this marker instead lets the call be authenticated first and
    then refused as INVALID_ARGUMENT, like any other bad input."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def error(self) -> InvalidArgument:
        return InvalidArgument("request", f"not a valid {self.type_name} message")


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    message_class = getattr(deserializer, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    malformed = Malformed(getattr(descriptor, "full_name", "request"))

    def parse(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:
            return malformed

    return parse


async def _checked_requests(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if type(request) is Malformed:
            raise request.error()
        yield request


def _checked_stream_in(behavior: Any) -> Any:
    def call(requests: AsyncIterator[Any], context: Any) -> Any:
        return behavior(_checked_requests(requests), context)

    return call


def _checked_stream_out(behavior: StreamBehavior) -> StreamBehavior:
    async def call(request: Any, context: Any) -> AsyncIterator[Any]:
        if type(request) is Malformed:
            raise request.error()
        async for response in behavior(request, context):
            yield response

    return call


def wrap_handler(
    handler: Handler,
    unary: Callable[[UnaryBehavior], UnaryBehavior],
    stream: Callable[[StreamBehavior], StreamBehavior],
) -> Handler:
    """The handler with `unary`/`stream` around its behavior; a request that does
    not parse reaches the wrapper as INVALID_ARGUMENT raised inside it.

    Except in unary-unary calls, the hot path of every service: there `unary`
    gets the behavior itself and the request as parsed, and must refuse a
    `Malformed` one itself (`raise request.error()`), which saves a coroutine
    per call."""
    des, ser = _tolerant(handler.request_deserializer), handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=des,
            response_serializer=ser,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            unary(_checked_stream_in(handler.stream_unary)),
            request_deserializer=des,
            response_serializer=ser,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream(_checked_stream_out(as_async_generator(handler.unary_stream))),
            request_deserializer=des,
            response_serializer=ser,
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            stream(_checked_stream_in(as_async_generator(handler.stream_stream))),
            request_deserializer=des,
            response_serializer=ser,
        )
    raise TypeError("method handler has no behavior")


async def hear_out(requests: Any, quiet_s: float = 0.25, within_s: float = 2.0) -> None:
    """Read and drop what a client still sends on a call about to end in error,
    until it half-closes, pauses for `quiet_s`, or `within_s` has passed.

    A client-streaming call that ends while the client's write is in flight
    reaches a grpc.aio client as INTERNAL "Internal error from Core", not the
    status the server sent (grpc/grpc#36066: the failed write overwrites it).
    Letting the writes in flight land first makes a refusal arrive as itself."""
    loop = asyncio.get_running_loop()
    until = loop.time() + within_s
    with contextlib.suppress(Exception):
        pending = requests.__aiter__()
        while (left := until - loop.time()) > 0:
            await asyncio.wait_for(pending.__anext__(), min(quiet_s, left))


def method_parts(full_method: str) -> tuple[str, str]:
    """'/venue.identity.v1.IdentityService/ResolveBand' -> (service, method)."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.rpartition("/")
    return service, method

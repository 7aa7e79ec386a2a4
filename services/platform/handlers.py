"""Wrapping gRPC method handlers, for interceptors that run around the servicer.

A grpc.aio server interceptor returns a method handler; to run code around the
servicer in the call's own task (where context variables and spans live), it has
to wrap the handler's behavior. These helpers do it once for the four kinds of
handler, so each interceptor says only what it does around a call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

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


def wrap_handler(
    handler: Handler,
    unary: Callable[[UnaryBehavior], UnaryBehavior],
    stream: Callable[[StreamBehavior], StreamBehavior],
) -> Handler:
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary), request_deserializer=des, response_serializer=ser
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            unary(handler.stream_unary), request_deserializer=des, response_serializer=ser
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream(cast(StreamBehavior, handler.unary_stream)),
            request_deserializer=des,
            response_serializer=ser,
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            stream(cast(StreamBehavior, handler.stream_stream)),
            request_deserializer=des,
            response_serializer=ser,
        )
    raise TypeError("method handler has no behavior")


def method_parts(full_method: str) -> tuple[str, str]:
    """'/venue.identity.v1.IdentityService/ResolveBand' -> (service, method)."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.rpartition("/")
    return service, method

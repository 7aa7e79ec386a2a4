"""A grpc.aio server whose method handlers get the platform's stages when they
are registered, not by a server interceptor on every call.

An interceptor costs each call a coroutine, a `HandlerCallDetails` and a
handler lookup before the method runs; wrapping at registration costs nothing
per call. Every service's handlers are served by one generic handler with one
table of wrapped methods: grpc.aio keeps a pending request future per
*registered* method and waits on all of them (`asyncio.wait`) for every call
that arrives, so a service with thirty methods paid for thirty-odd futures per
call, and each extra generic handler is one more lookup that misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc

from services.platform.handlers import Handler
from services.platform.interceptors import PlatformStages


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class _Dispatch(grpc.GenericRpcHandler):
    """The handlers registered so far, each method's wrapped once on first use."""

    def __init__(self, stages: PlatformStages) -> None:
        self._stages = stages
        self.handlers: list[grpc.GenericRpcHandler] = []
        # Only methods some handler serves: a caller's made-up method names must
        # not grow the table.
        self._wrapped: dict[str, Handler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        method = handler_call_details.method
        found = self._wrapped.get(method)
        if found is None:
            for generic in self.handlers:
                handler = generic.service(handler_call_details)
                if handler is not None:
                    found = self._wrapped[method] = self._stages.wrap(method, handler)
                    break
        return found


class WrappingServer(grpc.aio.Server):
    """The server a service registers on (`register(server)` in its set-up):
    every handler added gets the platform's stages; the rest is the grpc.aio
    server's own."""

    def __init__(self, server: grpc.aio.Server, stages: PlatformStages) -> None:
        self.inner = server
        self._dispatch = _Dispatch(stages)
        server.add_generic_rpc_handlers((self._dispatch,))

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]
    ) -> None:
        self._dispatch.handlers.extend(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Handler]
    ) -> None:
        # Generated code registers a service both ways: the generic handler it
        # added just before serves these methods already.
        missing = {
            name: handler
            for name, handler in method_handlers.items()
            if self._dispatch.service(_Details(f"/{service_name}/{name}")) is None
        }
        if missing:
            self.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(service_name, missing)]
            )

    def add_insecure_port(self, address: str) -> int:
        return self.inner.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self.inner.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self, grace: float | None) -> None:
        await self.inner.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self.inner.wait_for_termination(timeout)

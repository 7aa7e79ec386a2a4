"""The floor: a bare grpc.aio echo server with no interceptors, no auth, no
telemetry. Every request-rate figure is compared with this, measured in the
same run on the same machine.

  python -m bench.floor_server PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def main(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Floor",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                _echo, request_deserializer=lambda b: b, response_serializer=lambda b: b
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

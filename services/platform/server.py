"""The server bootstrap every service runs: `python -m services.<name>`.

Start: settings -> logging and telemetry -> database (embedded when no
DATABASE_URL) -> migrations under an advisory lock -> pool -> event hub -> token
verification (and, outside identity, the revocation follower) -> the service's
own set-up -> gRPC server with interceptors, health and reflection -> SERVING.

SIGTERM or SIGINT: health goes NOT_SERVING (load balancers stop sending), the
server stops accepting calls and gives in-flight ones `VENUE_SHUTDOWN_GRACE`
seconds, background tasks stop, the pool closes, telemetry is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

from services.platform import db, migrations, service_secrets, tls
from services.platform.clients import Clients, ServiceToken, open_channel, service_tls
from services.platform.config import Settings
from services.platform.events import EventHub, MemoryCursor, StreamConsumer
from services.platform.interceptors import PlatformStages
from services.platform.logs import setup_logging
from services.platform.principal import Kind, Policy
from services.platform.registration import WrappingServer
from services.platform.telemetry import Telemetry, setup_telemetry
from services.platform.tokens import TokenVerifier

log = logging.getLogger("venue.server")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass
class Runtime:
    """What a service's set-up gets to build its servicer from."""

    settings: Settings
    dsn: str
    pool: asyncpg.Pool
    hub: EventHub
    verifier: TokenVerifier
    clients: Clients
    telemetry: Telemetry
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def clock(self) -> Any:
        return self.settings.clock

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task that runs until shutdown."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)


# The service's set-up: builds its servicer and returns what registers it.
Setup = Callable[[Runtime], Awaitable[Callable[[grpc.aio.Server], None]]]
# Identity verifies tokens with its own key instead of fetching it.
VerifierFactory = Callable[[Settings], Awaitable[TokenVerifier]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    # Full proto service name, for health and reflection.
    proto_service: str
    policy: Policy
    setup: Setup
    migrations: Path | None = None
    verifier: VerifierFactory | None = None
    # Every service refuses revoked credentials; only identity (which holds the
    # list itself) and stand-alone diagnostics skip following identity's stream.
    follows_revocations: bool = True


def own_service_secret(settings: Settings) -> str:
    if settings.service_secret:
        return settings.service_secret
    # Local runs share the data directory with identity; containers are given
    # VENUE_SERVICE_SECRET instead.
    master = service_secrets.load_or_create_master(settings.data_dir)
    return service_secrets.derive(master, settings.service)


async def _fetch_jwks(settings: Settings) -> str:
    from venue.identity.v1 import identity_pb2, identity_pb2_grpc  # noqa: PLC0415

    channel = open_channel(
        settings.addresses["identity"], traced=False, secure=service_tls(settings)
    )
    try:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        reply = await stub.GetSigningKeys(
            identity_pb2.GetSigningKeysRequest(), timeout=5.0, wait_for_ready=True
        )
        return str(reply.jwks_json)
    finally:
        await channel.close()


async def remote_verifier(settings: Settings) -> TokenVerifier:
    """Keys from identity; waits for identity to come up."""
    for attempt in range(120):
        try:
            jwks = await _fetch_jwks(settings)
            break
        except grpc.aio.AioRpcError:
            if attempt == 119:
                raise
            await asyncio.sleep(0.5)
    return TokenVerifier(jwks, fetch_jwks=lambda: _fetch_jwks(settings))


def follow_revocations(runtime: Runtime) -> StreamConsumer[Any]:
    """Keeps the verifier's revocation list in step with identity's stream."""
    from venue.common.v1 import common_pb2  # noqa: PLC0415
    from venue.identity.v1 import identity_pb2, identity_pb2_grpc  # noqa: PLC0415

    stub = identity_pb2_grpc.IdentityServiceStub(runtime.clients.channel("identity"))
    revocations = runtime.verifier.revocations
    kinds = {
        identity_pb2.PRINCIPAL_KIND_DEVICE: Kind.DEVICE,
        identity_pb2.PRINCIPAL_KIND_STAFF: Kind.STAFF,
    }

    def open_stream(cursor: str) -> AsyncIterator[identity_pb2.WatchIdentityEventsResponse]:
        request = identity_pb2.WatchIdentityEventsRequest(
            start=common_pb2.StreamCursor(cursor=cursor)
        )
        return stub.WatchIdentityEvents(request).__aiter__()

    async def handle(
        event: identity_pb2.WatchIdentityEventsResponse, _: asyncpg.Connection | None
    ) -> None:
        which = event.WhichOneof("event")
        if which == "credential_revoked":
            kind = kinds.get(event.credential_revoked.kind)
            if kind is not None:
                revocations.revoke(kind, event.credential_revoked.subject)
        elif which == "guest_erased":
            revocations.revoke(Kind.GUEST, event.guest_erased.guest_id)

    return StreamConsumer(
        f"{runtime.settings.service}-revocations",
        open_stream,
        handle,
        lambda e: e.cursor,
        MemoryCursor(),
        clock=runtime.settings.clock,
    )


def build_server(
    definition: ServiceDefinition, verifier: TokenVerifier
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """The server, on which every handler registered gets the platform's stages
    (interceptors.py: span, auth, deadline guard, error mapping)."""
    stages = PlatformStages(verifier, {definition.proto_service: definition.policy})
    bare = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Clients (the platform's own and the world's devices) ping every 20 s to
            # keep long streams alive; gRPC's default answers pings more often than
            # every 5 minutes with GOAWAY "too_many_pings", which drops the streams.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    server = WrappingServer(bare, stages)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [definition.proto_service, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return server, health_servicer


async def open_database(
    definition: ServiceDefinition, settings: Settings
) -> tuple[str, asyncpg.Pool]:
    """The database URL (embedded when none is set), migrated, and a pool on it."""
    dsn = await asyncio.to_thread(db.resolve_database_url, settings.database_url, settings.data_dir)
    await db.wait_for_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        folders = {"platform": migrations.PLATFORM_MIGRATIONS}
        if definition.migrations is not None:
            folders[definition.name] = definition.migrations
        await migrations.migrate(conn, settings.schema, folders)
    finally:
        await conn.close()
    pool = await db.create_pool(dsn, settings.schema, definition.name, settings.db_pool_size)
    return dsn, pool


@dataclass
class RunningService:
    """A started service: its runtime, server and health, until `stop()`."""

    runtime: Runtime
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    token: ServiceToken | None
    port: int

    async def stop(self) -> None:
        """Stop taking calls, let in-flight ones finish, then release everything."""
        runtime = self.runtime
        grace = runtime.settings.shutdown_grace
        log.info("shutting down", extra={"grace_s": grace})
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in runtime._tasks:
            task.cancel()
        for task in runtime._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for closer in reversed(runtime._closers):
            with contextlib.suppress(Exception):
                await closer()
        await runtime.hub.stop()
        await runtime.clients.close()
        if self.token is not None:
            await self.token.close()
        await runtime.pool.close()
        log.info("stopped")


async def start(
    definition: ServiceDefinition, settings: Settings, telemetry: Telemetry | None = None
) -> RunningService:
    """Open the database, set the service up and start serving."""
    dsn, pool = await open_database(definition, settings)
    hub = EventHub(pool, dsn, settings.schema)
    await hub.start()
    verifier = await (definition.verifier or remote_verifier)(settings)
    token = None
    if definition.name != "identity":
        token = ServiceToken(settings, own_service_secret(settings))
    telemetry = telemetry or Telemetry(None, None)
    runtime = Runtime(settings, dsn, pool, hub, verifier, Clients(settings, token), telemetry)
    if definition.follows_revocations:
        runtime.spawn(follow_revocations(runtime).run(), "revocations")

    register = await definition.setup(runtime)
    server, health_servicer = build_server(definition, verifier)
    register(server)
    # Everything built so far lives as long as the process: keep it out of the
    # collector's way so full collections stay short on the hot path.
    gc.collect()
    gc.freeze()
    port = tls.add_port(server, settings.listen_address, service_tls(settings))
    if port == 0:
        raise RuntimeError(f"cannot listen on {settings.listen_address}")
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    await health_servicer.set(definition.proto_service, serving)
    log.info("serving", extra={"address": f"{settings.listen_host}:{port}"})
    return RunningService(runtime, server, health_servicer, token, port)


async def serve(definition: ServiceDefinition, settings: Settings | None = None) -> None:
    """Run a service until SIGTERM or SIGINT, as its own process."""
    settings = settings or Settings.from_env(definition.name)
    setup_logging(definition.name, settings.log_level, settings.log_format)
    telemetry = setup_telemetry(definition.name)
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = await start(definition, settings, telemetry)
    await stop.wait()
    await running.stop()
    telemetry.shutdown()


def main(definition: ServiceDefinition) -> None:
    asyncio.run(serve(definition))

"""Identity's set-up: its store, the ResolveBand cache, the signing key, the
bootstrap administrator, and the revocation list of its own verifier."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import grpc

from services.identity.band_cache import BandCache
from services.identity.policy import ADMIN, POLICY
from services.identity.servicer import IdentityServicer
from services.identity.store import IdentityStore
from services.platform import service_secrets
from services.platform.config import Settings
from services.platform.events import StoredEvent
from services.platform.principal import Kind
from services.platform.server import Runtime, ServiceDefinition
from services.platform.tokens import TokenVerifier, local_signing_key, local_verifier_for
from venue.identity.v1 import identity_pb2 as pb
from venue.identity.v1 import identity_pb2_grpc


async def local_verifier(settings: Settings) -> TokenVerifier:
    return local_verifier_for(settings.data_dir)


async def setup(runtime: Runtime) -> Callable[[grpc.aio.Server], None]:
    settings = runtime.settings
    store = IdentityStore(runtime.pool)
    master = service_secrets.load_or_create_master(settings.data_dir)
    admin_secret = service_secrets.derive(master, service_secrets.BOOTSTRAP_ADMIN)
    await store.ensure_staff(
        service_secrets.BOOTSTRAP_ADMIN_ID,
        "Bootstrap administrator",
        ADMIN,
        hashlib.sha256(admin_secret.encode()).digest(),
    )

    revocations = runtime.verifier.revocations
    for device_id in await store.revoked_devices():
        revocations.revoke(Kind.DEVICE, device_id)
    for staff_id in await store.revoked_staff():
        revocations.revoke(Kind.STAFF, staff_id)
    for guest_id in await store.erased_guests():
        revocations.revoke(Kind.GUEST, guest_id)

    cache: BandCache[pb.ResolveBandResponse] = BandCache()

    def on_event(event: StoredEvent) -> None:
        # Keeps every replica's cache and revocation list in step with writes
        # made by any replica.
        if event.kind in ("band_linked", "band_deactivated"):
            message = pb.WatchIdentityEventsResponse.FromString(event.payload)
            band = getattr(message, event.kind)
            cache.invalidate_uid(band.band_uid)
        if event.kind == "credential_revoked":
            message = pb.WatchIdentityEventsResponse.FromString(event.payload)
            kind = (
                Kind.DEVICE
                if message.credential_revoked.kind == pb.PRINCIPAL_KIND_DEVICE
                else Kind.STAFF
            )
            revocations.revoke(kind, message.credential_revoked.subject)
        elif event.kind == "guest_erased":
            revocations.revoke(Kind.GUEST, event.key)
        if event.key:
            cache.invalidate_guest(event.key)

    runtime.hub.on_event(on_event)
    servicer = IdentityServicer(
        store,
        runtime.hub,
        cache,
        local_signing_key(settings.data_dir),
        master,
        settings.clock,
        revocations,
    )

    def register(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)

    return register


DEFINITION = ServiceDefinition(
    name="identity",
    proto_service="venue.identity.v1.IdentityService",
    policy=POLICY,
    setup=setup,
    migrations=Path(__file__).parent / "migrations",
    verifier=local_verifier,
    follows_revocations=False,
)

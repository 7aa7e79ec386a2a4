"""One channel per service, with the stubs the world's devices and apps use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from services.platform import tls
from venue.access.v1 import access_pb2_grpc
from venue.identity.v1 import identity_pb2_grpc
from venue.itinerary.v1 import itinerary_pb2_grpc
from venue.location.v1 import location_pb2_grpc
from venue.photo.v1 import photo_pb2_grpc
from venue.queue.v1 import queue_pb2_grpc

# Big ping batches and capture lists: allow more than gRPC's 4 MB default.
OPTIONS = [
    ("grpc.max_send_message_length", 32 * 1024 * 1024),
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 20_000),
]


@dataclass
class Stubs:
    channels: dict[str, grpc.aio.Channel]
    identity: identity_pb2_grpc.IdentityServiceAsyncStub
    access: access_pb2_grpc.AccessServiceAsyncStub
    location: location_pb2_grpc.LocationServiceAsyncStub
    queue: queue_pb2_grpc.QueueServiceAsyncStub
    itinerary: itinerary_pb2_grpc.ItineraryServiceAsyncStub
    photo: photo_pb2_grpc.PhotoServiceAsyncStub

    @classmethod
    def connect(cls, addresses: Mapping[str, str]) -> Stubs:
        # TLS (and the world's client certificate) when VENUE_TLS_* say so.
        secure = tls.for_client()
        ch = {name: tls.channel(addr, secure, options=OPTIONS) for name, addr in addresses.items()}
        return cls(
            channels=ch,
            identity=identity_pb2_grpc.IdentityServiceStub(ch["identity"]),
            access=access_pb2_grpc.AccessServiceStub(ch["access"]),
            location=location_pb2_grpc.LocationServiceStub(ch["location"]),
            queue=queue_pb2_grpc.QueueServiceStub(ch["queue"]),
            itinerary=itinerary_pb2_grpc.ItineraryServiceStub(ch["itinerary"]),
            photo=photo_pb2_grpc.PhotoServiceStub(ch["photo"]),
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()

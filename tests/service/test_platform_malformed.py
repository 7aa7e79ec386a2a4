"""Bytes that are not the request message: the caller is authenticated first,
then refused with INVALID_ARGUMENT naming the request (never UNKNOWN), on the
unary hot path (ResolveBand) as on any other."""

from __future__ import annotations

import grpc

from tests.service.conftest import Identity
from tests.support.stubs import bearer, expect_error
from venue.common.v1 import common_pb2
from venue.identity.v1 import identity_pb2 as pb

RESOLVE = "/venue.identity.v1.IdentityService/ResolveBand"
NOT_PROTOBUF = b"\xff\xff\xff\xff"


async def test_unparsable_request_is_invalid_argument_after_auth(identity: Identity) -> None:
    _, scanner = await identity.device(common_pb2.DEVICE_KIND_RIDE_SCANNER)
    async with grpc.aio.insecure_channel(identity.address) as channel:
        resolve: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            RESOLVE, request_serializer=None, response_deserializer=None
        )
        await expect_error(resolve(NOT_PROTOBUF), grpc.StatusCode.UNAUTHENTICATED)
        await expect_error(
            resolve(NOT_PROTOBUF, metadata=bearer(scanner)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "request",
        )
        # A good request on the same path still answers (here: no such band).
        good = pb.ResolveBandRequest(band_uid="BAND-NEVER-LINKED").SerializeToString()
        await expect_error(resolve(good, metadata=bearer(scanner)), grpc.StatusCode.NOT_FOUND)

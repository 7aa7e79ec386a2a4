"""Every RPC of every implemented service, found from the generated descriptors
and the services' definitions, so a service that lands is covered with no new
test code."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message

from services.platform.principal import Allow
from services.runner.suite import implemented_services


@dataclass(frozen=True)
class Rpc:
    service: str
    proto_service: str
    name: str
    method: MethodDescriptor
    rule: Allow

    @property
    def key(self) -> str:
        return f"{self.service}.{self.name}"

    @property
    def path(self) -> str:
        return f"/{self.proto_service}/{self.name}"

    @property
    def input(self) -> Descriptor:
        return self.method.input_type

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def unary(self) -> bool:
        return not (self.client_streaming or self.server_streaming)

    def request(self, **fields: Any) -> Message:
        return message_class(self.input)(**fields)


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


@cache
def all_rpcs() -> tuple[Rpc, ...]:
    found: list[Rpc] = []
    for service in implemented_services():
        definition = importlib.import_module(f"services.{service}.service").DEFINITION
        importlib.import_module(f"venue.{service}.v1.{service}_pb2")
        described = descriptor_pool.Default().FindServiceByName(definition.proto_service)
        for method in described.methods:
            rule = definition.policy.get(method.name, Allow())
            found.append(Rpc(service, definition.proto_service, method.name, method, rule))
    return tuple(found)


def rpc(key: str) -> Rpc:
    return next(r for r in all_rpcs() if r.key == key)

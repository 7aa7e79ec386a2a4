"""Domain errors and their gRPC status, with google.rpc error details.

Domain code raises these; one interceptor turns them into a status with details a
client can act on (the bad field, the missing resource, the failed precondition).
Anything else becomes INTERNAL with a generic message: the detail goes only to logs
and spans.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "venue-twin"


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    rpc_code: int = code_pb2.UNKNOWN

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or type(self).__name__.upper()

    def details(self) -> list[any_pb2.Any]:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)
        return [_pack(info)]

    def to_status(self) -> status_pb2.Status:
        return status_pb2.Status(code=self.rpc_code, message=self.message, details=self.details())


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    rpc_code = code_pb2.INVALID_ARGUMENT

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}", reason="INVALID_ARGUMENT")
        self.field = field
        self.description = description

    def details(self) -> list[any_pb2.Any]:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=self.field, description=self.description
        )
        return [
            *super().details(),
            _pack(error_details_pb2.BadRequest(field_violations=[violation])),
        ]


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    rpc_code = code_pb2.NOT_FOUND

    def __init__(self, resource_type: str, resource_name: str = "") -> None:
        # Leave resource_name empty where the id itself is personal (a band UID).
        shown = f" {resource_name!r}" if resource_name else ""
        super().__init__(f"{resource_type}{shown} not found", reason="NOT_FOUND")
        self.resource_type = resource_type
        self.resource_name = resource_name

    def details(self) -> list[any_pb2.Any]:
        info = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type, resource_name=self.resource_name
        )
        return [*super().details(), _pack(info)]


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    rpc_code = code_pb2.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    rpc_code = code_pb2.FAILED_PRECONDITION

    def __init__(self, message: str, *, reason: str, subject: str = "") -> None:
        super().__init__(message, reason=reason)
        self.subject = subject

    def details(self) -> list[any_pb2.Any]:
        violation = error_details_pb2.PreconditionFailure.Violation(
            type=self.reason, subject=self.subject, description=self.message
        )
        failure = error_details_pb2.PreconditionFailure(violations=[violation])
        return [*super().details(), _pack(failure)]


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    rpc_code = code_pb2.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    rpc_code = code_pb2.UNAUTHENTICATED


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    rpc_code = code_pb2.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, subject: str = "") -> None:
        super().__init__(message, reason="RESOURCE_EXHAUSTED")
        self.subject = subject

    def details(self) -> list[any_pb2.Any]:
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=self.subject, description=self.message
        )
        failure = error_details_pb2.QuotaFailure(violations=[violation])
        return [*super().details(), _pack(failure)]


class Aborted(DomainError):
    """A conflict the caller should retry (serialization failure, lost race)."""

    code = grpc.StatusCode.ABORTED
    rpc_code = code_pb2.ABORTED


class Unavailable(DomainError):
    """A dependency is down; the caller may retry with backoff."""

    code = grpc.StatusCode.UNAVAILABLE
    rpc_code = code_pb2.UNAVAILABLE


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    rpc_code = code_pb2.DEADLINE_EXCEEDED


class Internal(DomainError):
    """What the caller sees of a surprise: a generic message, no detail."""

    code = grpc.StatusCode.INTERNAL
    rpc_code = code_pb2.INTERNAL

    def __init__(self) -> None:
        super().__init__("internal error", reason="INTERNAL")

"""Who is calling: the principal a verified token speaks for, and call policies.

Each RPC declares which kinds of caller it admits (an `Allow`); the auth
interceptor refuses the rest before any service code runs. Finer rules that
depend on the data (a guest sees only their own party) are the servicer's.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from venue.common.v1 import common_pb2

DeviceKind = common_pb2.DeviceKind
StaffRole = common_pb2.StaffRole


class Kind(enum.Enum):
    ANONYMOUS = "anonymous"
    GUEST = "guest"
    DEVICE = "device"
    STAFF = "staff"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    kind: Kind
    subject: str = ""
    party_id: str = ""
    device_kind: int = 0
    venue_ref: str = ""
    staff_role: int = 0
    issued_at: float = 0.0
    expires_at: float = 0.0

    def is_staff(self, *roles: int) -> bool:
        return self.kind is Kind.STAFF and (not roles or self.staff_role in roles)

    def is_service(self, *names: str) -> bool:
        return self.kind is Kind.SERVICE and (not names or self.subject in names)

    def is_device(self, *kinds: int) -> bool:
        return self.kind is Kind.DEVICE and (not kinds or self.device_kind in kinds)

    @property
    def is_guest(self) -> bool:
        return self.kind is Kind.GUEST

    @property
    def log_id(self) -> str:
        """A pseudonymous label for logs and spans."""
        return f"{self.kind.value}:{self.subject}" if self.subject else self.kind.value


ANONYMOUS = Principal(Kind.ANONYMOUS)

current_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "current_principal", default=ANONYMOUS
)


def caller() -> Principal:
    return current_principal.get()


ALL_DEVICES = frozenset(
    v for v in common_pb2.DeviceKind.values() if v != common_pb2.DEVICE_KIND_UNSPECIFIED
)
ALL_STAFF = frozenset(
    v for v in common_pb2.StaffRole.values() if v != common_pb2.STAFF_ROLE_UNSPECIFIED
)


@dataclass(frozen=True)
class Allow:
    """The kinds of caller one RPC admits; anything not named is refused."""

    anonymous: bool = False
    guests: bool = False
    devices: frozenset[int] = frozenset()
    staff: frozenset[int] = frozenset()
    services: frozenset[str] = frozenset()

    def admits(self, principal: Principal) -> bool:
        if self.anonymous:
            # A public method: a login or key set every caller may use.
            return True
        match principal.kind:
            case Kind.ANONYMOUS:
                return self.anonymous
            case Kind.GUEST:
                return self.guests
            case Kind.DEVICE:
                return principal.device_kind in self.devices
            case Kind.STAFF:
                return principal.staff_role in self.staff
            case Kind.SERVICE:
                return principal.subject in self.services
        return False


def allow(
    *,
    anonymous: bool = False,
    guests: bool = False,
    devices: Iterable[int] = (),
    staff: Iterable[int] = (),
    services: Iterable[str] = (),
) -> Allow:
    return Allow(
        anonymous=anonymous,
        guests=guests,
        devices=frozenset(devices),
        staff=frozenset(staff),
        services=frozenset(services),
    )


# Method name (the part after the last '/') -> who may call it.
Policy = Mapping[str, Allow]

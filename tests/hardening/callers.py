"""The kinds of caller the suite knows, each as a name, the principal a policy
judges and a short column label for the authorization table."""

from __future__ import annotations

from dataclasses import dataclass

from services.platform.config import SERVICE_PORTS
from services.platform.principal import Kind, Principal
from venue.common.v1 import common_pb2


@dataclass(frozen=True)
class CallerKind:
    name: str  # "anonymous", "device:gate", "guest", "staff:admin", "service:queue"
    label: str  # two letters, a column of the table
    principal: Principal

    @property
    def kind(self) -> Kind:
        return self.principal.kind


def _short(enum_name: str, prefix: str) -> str:
    return enum_name.removeprefix(prefix).lower()


DEVICE_LABELS = {
    "gate": "gt",
    "ride_scanner": "rs",
    "reader": "rd",
    "camera": "cm",
    "point_of_sale": "ps",
    "photographer": "ph",
    "door_lock": "dl",
    "kiosk": "ki",
}
STAFF_LABELS = {"ops": "op", "admin": "ad", "desk": "dk"}
SERVICE_LABELS = {
    "identity": "Si",
    "access": "Sa",
    "location": "Sl",
    "queue": "Sq",
    "routing": "Sr",
    "itinerary": "St",
    "photo": "Sp",
}


def caller_kinds() -> list[CallerKind]:
    """Every kind of caller: anonymous, each device kind and staff role of the
    common proto, a guest, and each service of the suite."""
    kinds = [CallerKind("anonymous", "an", Principal(Kind.ANONYMOUS))]
    for enum_name, value in common_pb2.DeviceKind.items():
        if value == common_pb2.DEVICE_KIND_UNSPECIFIED:
            continue
        short = _short(enum_name, "DEVICE_KIND_")
        kinds.append(
            CallerKind(
                f"device:{short}",
                DEVICE_LABELS.get(short, short[:2]),
                Principal(Kind.DEVICE, "d", device_kind=value),
            )
        )
    kinds.append(CallerKind("guest", "gu", Principal(Kind.GUEST, "g", party_id="p")))
    for role_name, role in common_pb2.StaffRole.items():
        if role == common_pb2.STAFF_ROLE_UNSPECIFIED:
            continue
        short = _short(role_name, "STAFF_ROLE_")
        kinds.append(
            CallerKind(
                f"staff:{short}",
                STAFF_LABELS.get(short, short[:2]),
                Principal(Kind.STAFF, "s", staff_role=role),
            )
        )
    # Identity issues no token to itself: it never calls another service.
    for service in (s for s in SERVICE_PORTS if s != "identity"):
        kinds.append(
            CallerKind(
                f"service:{service}",
                SERVICE_LABELS.get(service, "S" + service[0]),
                Principal(Kind.SERVICE, service),
            )
        )
    return kinds


# Order of preference when one caller should exercise an RPC as far as it goes:
# the most privileged kind the policy admits.
PRIVILEGE_ORDER = [
    "staff:admin",
    "staff:ops",
    "staff:desk",
    *(f"device:{d}" for d in DEVICE_LABELS),
    "guest",
    *(f"service:{s}" for s in SERVICE_PORTS if s != "identity"),
    "anonymous",
]

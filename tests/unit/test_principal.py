"""Call policies: each kind of caller is admitted only where a policy names it."""

from __future__ import annotations

import pytest

from services.platform.principal import ANONYMOUS, Kind, Principal, allow

GATE, READER = 1, 3
OPS, ADMIN = 1, 2

GUEST = Principal(Kind.GUEST, "g")
GATE_DEVICE = Principal(Kind.DEVICE, "d", device_kind=GATE)
READER_DEVICE = Principal(Kind.DEVICE, "r", device_kind=READER)
OPS_STAFF = Principal(Kind.STAFF, "s", staff_role=OPS)
ADMIN_STAFF = Principal(Kind.STAFF, "a", staff_role=ADMIN)
ACCESS = Principal(Kind.SERVICE, "access")
PHOTO = Principal(Kind.SERVICE, "photo")

CALLERS = [ANONYMOUS, GUEST, GATE_DEVICE, READER_DEVICE, OPS_STAFF, ADMIN_STAFF, ACCESS, PHOTO]


@pytest.mark.parametrize(
    ("rule", "admitted"),
    [
        (allow(), set()),
        (allow(anonymous=True), set(range(len(CALLERS)))),
        (allow(guests=True), {1}),
        (allow(devices=[GATE]), {2}),
        (allow(staff=[ADMIN]), {5}),
        (allow(staff=[OPS, ADMIN], services=["access"]), {4, 5, 6}),
        (allow(guests=True, devices=[READER]), {1, 3}),
    ],
)
def test_rule_admits_exactly_the_named_callers(rule: object, admitted: set[int]) -> None:
    got = {i for i, who in enumerate(CALLERS) if rule.admits(who)}  # type: ignore[attr-defined]
    assert got == admitted

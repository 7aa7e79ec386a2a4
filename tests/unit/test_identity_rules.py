"""Identity's pure rules: formats, who may act for whom, consent merging, login limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.identity import passwords, rules
from services.identity.login_limiter import LoginLimiter
from services.identity.records import Consent, GuestRecord
from services.platform.errors import InvalidArgument, ResourceExhausted
from services.platform.principal import Kind, Principal

NOW = datetime(2026, 7, 4, 9, tzinfo=UTC)


def guest(guest_id: str, party: str, role: int = 1) -> GuestRecord:
    return GuestRecord(guest_id, party, role, "Ann", "ann@example.com", 120, Consent(), NOW)


ADULT_A = Principal(Kind.GUEST, "a1", party_id="pA")
ADULT_B = Principal(Kind.GUEST, "b1", party_id="pB")
DESK = Principal(Kind.STAFF, "s", staff_role=3)
ADMIN = Principal(Kind.STAFF, "s", staff_role=2)


@pytest.mark.parametrize("uid", ["04:A2:19:FF", "band_0001", "ABCD"])
def test_valid_band_uids(uid: str) -> None:
    assert rules.band_uid(uid) == uid


@pytest.mark.parametrize("uid", ["", "abc", "x" * 65, "has space", "semi;colon", "ü-band"])
def test_invalid_band_uids_name_the_field(uid: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        rules.band_uid(uid)
    assert err.value.field == "band_uid"


def test_email_and_password_rules() -> None:
    assert rules.email(" ann@example.com ") == "ann@example.com"
    for bad in ("ann", "ann@", "@x.com", "a b@x.com"):
        with pytest.raises(InvalidArgument):
            rules.email(bad)
    with pytest.raises(InvalidArgument, match="at least"):
        rules.password("short")


def test_guests_see_and_manage_only_their_own_party() -> None:
    child_a = guest("c1", "pA", role=2)
    assert rules.may_read_guest(ADULT_A, child_a)
    assert rules.may_manage_guest(ADULT_A, child_a)
    assert not rules.may_read_guest(ADULT_B, child_a)
    assert not rules.may_manage_guest(ADULT_B, child_a)
    assert rules.may_manage_guest(DESK, child_a)


def test_consent_is_the_guests_own_or_an_adults_for_a_child() -> None:
    other_adult = guest("a2", "pA", role=1)
    child = guest("c1", "pA", role=2)
    assert rules.may_decide_for(ADULT_A, guest("a1", "pA"))
    assert rules.may_decide_for(ADULT_A, child)
    assert not rules.may_decide_for(ADULT_A, other_adult)
    assert not rules.may_decide_for(DESK, child)
    assert rules.may_decide_for(ADMIN, child)


@given(
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.booleans()),
)
def test_consent_merge_changes_only_what_is_set(
    a: bool, b: bool, c: bool, x: bool | None, y: bool | None, z: bool | None
) -> None:
    merged = rules.merged_consent(Consent(a, b, c), x, y, z)
    assert merged == Consent(a if x is None else x, b if y is None else y, c if z is None else z)


def test_passwords_hash_and_verify() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert passwords.verify_password("correct horse battery", stored)
    assert not passwords.verify_password("wrong horse battery", stored)
    assert not passwords.verify_password("x", "not-a-hash")
    assert stored != passwords.hash_password("correct horse battery")


def test_login_limiter_locks_after_repeated_failures_and_forgets_later() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60)
    for t in range(3):
        limiter.check("ann", now=t)
        limiter.failed("ann", now=t)
    with pytest.raises(ResourceExhausted):
        limiter.check("ann", now=10)
    limiter.check("bob", now=10)
    limiter.check("ann", now=100)

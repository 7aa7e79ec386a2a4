"""Tokens: what verifies, and every way a token must fail."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.platform.errors import Unauthenticated
from services.platform.principal import Kind, Principal
from services.platform.tokens import SigningKey, TokenVerifier

GUEST = Principal(Kind.GUEST, subject="g-1", party_id="p-1")


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return SigningKey.load_or_create(tmp_path / "keys" / "k.pem")


def verifier_for(key: SigningKey) -> TokenVerifier:
    return TokenVerifier(json.dumps(key.jwks()))


async def test_round_trip_keeps_the_principal(key: SigningKey) -> None:
    token = key.issue(GUEST, 60)
    principal = await verifier_for(key).verify(token)
    assert (principal.kind, principal.subject, principal.party_id) == (Kind.GUEST, "g-1", "p-1")


async def test_key_is_created_once_and_reused(tmp_path: Path) -> None:
    first = SigningKey.load_or_create(tmp_path / "k.pem")
    second = SigningKey.load_or_create(tmp_path / "k.pem")
    assert first.kid == second.kid
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    token = first.issue(GUEST, 60)
    assert (await verifier_for(second).verify(token)).subject == "g-1"


async def test_expired_token_is_refused(key: SigningKey) -> None:
    token = key.issue(GUEST, 10, now=time.time() - 3600)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier_for(key).verify(token)


async def test_expiry_is_checked_again_for_cached_tokens(key: SigningKey) -> None:
    verifier = verifier_for(key)
    token = key.issue(GUEST, 60)
    await verifier.verify(token)
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token, now=time.time() + 3600)


async def test_token_of_another_key_is_refused(key: SigningKey) -> None:
    forger = SigningKey(Ed25519PrivateKey.generate(), kid=key.kid)
    with pytest.raises(Unauthenticated):
        await verifier_for(key).verify(forger.issue(GUEST, 60))


async def test_tampered_claims_are_refused(key: SigningKey) -> None:
    header, payload, signature = key.issue(GUEST, 60).split(".")
    other = key.issue(Principal(Kind.STAFF, subject="s-1", staff_role=2), 60).split(".")[1]
    with pytest.raises(Unauthenticated):
        await verifier_for(key).verify(f"{header}.{other}.{signature}")
    assert payload != other


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "e30.e30."])
async def test_malformed_tokens_are_refused(key: SigningKey, token: str) -> None:
    with pytest.raises(Unauthenticated):
        await verifier_for(key).verify(token)


async def test_unsigned_and_hmac_tokens_are_refused(key: SigningKey) -> None:
    claims = {
        "sub": "s-1",
        "knd": "staff",
        "iss": "venue-identity",
        "aud": "venue-twin",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    unsigned = jwt.encode(claims, key="", algorithm="none")
    hmac_signed = jwt.encode(claims, key="k" * 32, algorithm="HS256", headers={"kid": key.kid})
    for token in (unsigned, hmac_signed):
        with pytest.raises(Unauthenticated):
            await verifier_for(key).verify(token)


async def test_wrong_audience_is_refused(key: SigningKey) -> None:
    claims = {
        "sub": "g",
        "knd": "guest",
        "iss": "venue-identity",
        "aud": "another-system",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    token = jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
    with pytest.raises(Unauthenticated):
        await verifier_for(key).verify(token)


async def test_revoked_subject_is_refused_even_when_cached(key: SigningKey) -> None:
    verifier = verifier_for(key)
    device = Principal(Kind.DEVICE, subject="d-1", device_kind=1)
    token = key.issue(device, 60)
    assert (await verifier.verify(token)).subject == "d-1"
    verifier.revocations.revoke(Kind.DEVICE, "d-1")
    with pytest.raises(Unauthenticated, match="revoked"):
        await verifier.verify(token)


async def test_unknown_key_id_refetches_keys_once(key: SigningKey, tmp_path: Path) -> None:
    rotated = SigningKey.load_or_create(tmp_path / "rotated.pem")
    fetches = 0

    async def fetch() -> str:
        nonlocal fetches
        fetches += 1
        return json.dumps(rotated.jwks())

    verifier = TokenVerifier(json.dumps(key.jwks()), fetch_jwks=fetch)
    assert (await verifier.verify(rotated.issue(GUEST, 60))).subject == "g-1"
    assert fetches == 1

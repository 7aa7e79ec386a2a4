"""Signed bearer tokens: Ed25519 JWTs issued by identity, verified everywhere.

Identity holds the private key (created on first start in the data directory);
every other service verifies with the public key set it fetches from identity
(GetSigningKeys), like a client of an OpenID provider. Verified tokens are cached
until they expire so the hot path does not pay for a signature check per call;
revocations are checked on every call, after the cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.platform.errors import Unauthenticated
from services.platform.principal import Kind, Principal

ISSUER = "venue-identity"
AUDIENCE = "venue-twin"
ALGORITHM = "EdDSA"
# Tolerated clock difference between issuer and verifier, in seconds.
LEEWAY = 30


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    # RFC 7638 thumbprint as the key id, so a key names itself.
    thumbprint = hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode())
    return {**jwk, "kid": _b64(thumbprint.digest()), "use": "sig", "alg": ALGORITHM}


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    kid: str

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key kept in the data directory, created on first start.

        Created with O_EXCL so that two processes starting at once agree on one key.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return cls(private_key=key, kid=public_jwk(key.public_key())["kid"])

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(self.private_key.public_key())]}

    def issue(self, principal: Principal, lifetime_s: float, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": principal.subject,
            "knd": principal.kind.value,
            "iat": int(now),
            "exp": int(now + lifetime_s),
            "jti": uuid.uuid4().hex,
        }
        if principal.party_id:
            claims["pty"] = principal.party_id
        if principal.device_kind:
            claims["dvk"] = principal.device_kind
        if principal.venue_ref:
            claims["ref"] = principal.venue_ref
        if principal.staff_role:
            claims["rol"] = principal.staff_role
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        kind = Kind(claims["knd"])
    except (KeyError, ValueError):
        raise Unauthenticated("token names no known kind of caller") from None
    if kind is Kind.ANONYMOUS or not claims.get("sub"):
        raise Unauthenticated("token names no caller")
    return Principal(
        kind=kind,
        subject=str(claims["sub"]),
        party_id=str(claims.get("pty", "")),
        device_kind=int(claims.get("dvk", 0)),
        venue_ref=str(claims.get("ref", "")),
        staff_role=int(claims.get("rol", 0)),
        issued_at=float(claims["iat"]),
        expires_at=float(claims["exp"]),
    )


class Revocations:
    """Subjects whose credentials were revoked (devices, staff, erased guests).

    Filled from identity's event stream; a token issued to a revoked subject is
    refused whatever its expiry.
    """

    def __init__(self) -> None:
        self._revoked: set[tuple[Kind, str]] = set()

    def revoke(self, kind: Kind, subject: str) -> None:
        self._revoked.add((kind, subject))

    def is_revoked(self, principal: Principal) -> bool:
        return (principal.kind, principal.subject) in self._revoked


KeyFetcher = Callable[[], Awaitable[str]]


class TokenVerifier:
    """Verifies bearer tokens against a JWKS, with a bounded cache of good ones."""

    def __init__(
        self,
        jwks_json: str | None = None,
        fetch_jwks: KeyFetcher | None = None,
        revocations: Revocations | None = None,
        cache_size: int = 50_000,
    ) -> None:
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetch = fetch_jwks
        self._last_fetch = 0.0
        self.revocations = revocations or Revocations()
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        if jwks_json:
            self.load_jwks(jwks_json)

    def load_jwks(self, jwks_json: str) -> None:
        keys = jwt.PyJWKSet.from_json(jwks_json).keys
        self._keys.update({k.key_id: k for k in keys if k.key_id})

    async def _key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        # An unknown key id may be a rotated key: refetch, but at most every 5 s.
        if key is None and self._fetch is not None and time.monotonic() - self._last_fetch > 5:
            self._last_fetch = time.monotonic()
            self.load_jwks(await self._fetch())
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token signed by an unknown key")
        return key

    async def verify(self, token: str, now: float | None = None) -> Principal:
        now = time.time() if now is None else now
        principal = self._cache.get(token)
        if principal is None:
            principal = await self._verify_signature(token)
            self._cache[token] = principal
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if principal.expires_at + LEEWAY < now:
            self._cache.pop(token, None)
            raise Unauthenticated("token expired")
        if self.revocations.is_revoked(principal):
            raise Unauthenticated("credential revoked")
        return principal

    async def _verify_signature(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated("token algorithm not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("token signature or claims invalid") from None
        return principal_from_claims(claims)


# Where identity keeps its signing key, in the data directory.
KEY_FILE = Path("keys") / "signing-ed25519.pem"


def local_signing_key(data_dir: Path) -> SigningKey:
    return SigningKey.load_or_create(data_dir / KEY_FILE)


def local_verifier_for(data_dir: Path) -> TokenVerifier:
    """A verifier from the key in the data directory (identity itself)."""
    return TokenVerifier(json.dumps(local_signing_key(data_dir).jwks()))

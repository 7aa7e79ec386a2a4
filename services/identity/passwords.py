"""Password hashing with scrypt (memory-hard, in the standard library).

Stored as scrypt$n$r$p$salt$hash so parameters can be raised later without
breaking existing hashes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 << 20)
    return "$".join(
        [
            "scrypt",
            str(N),
            str(R),
            str(P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 << 20,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, actual)


@functools.cache
def dummy_hash() -> str:
    """A hash to check against when the e-mail is unknown, so that timing does
    not tell which e-mail addresses have accounts."""
    return hash_password("not-a-real-password")

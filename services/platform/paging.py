"""Keyset pagination with opaque page tokens.

A token carries the sort key of the last item served and the name of the list
it belongs to, so a token from one list is refused by another.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from services.platform.errors import InvalidArgument

DEFAULT_PAGE = 50
MAX_PAGE = 500


def page_size(requested: int, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    if requested < 0:
        raise InvalidArgument("page.page_size", "must not be negative")
    return min(requested or default, maximum)


def encode(list_name: str, last_key: Sequence[Any]) -> str:
    raw = json.dumps({"l": list_name, "k": list(last_key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(list_name: str, token: str) -> list[Any] | None:
    """The last key of the previous page, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if data["l"] != list_name or not isinstance(data["k"], list):
            raise ValueError
        return list(data["k"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgument("page.page_token", "not a token from this list") from None


def next_token(list_name: str, items: Sequence[Any], size: int, key_of: Any) -> str:
    """The token for the page after `items` (fetched with size + 1 rows), or ''."""
    if len(items) <= size:
        return ""
    return encode(list_name, key_of(items[size - 1]))

"""Opaque, tamper-evident page cursors for keyset pagination.

A cursor names the last item of a page by its position in the order
``created_at DESC, id DESC`` and the query it belongs to; the next page is the items
strictly after that position. Items inserted meanwhile sort before the cursor (they are
newer), so no item of the listing is skipped or shown twice while others insert.

The token is base64url(JSON payload) + "." + base64url(HMAC-SHA256(payload)). The key is
``FLOWLEDGER_CURSOR_KEY`` when set (several databases behind one server, or a key that
is rotated on purpose), else a random secret the database keeps in ``flowledger_meta``
(created on first use), so every process on one database accepts the others' cursors.
A cursor that was edited, forged, or taken from another listing or query is refused as
a :class:`CursorError` (an InvalidInputError) on the ``cursor`` field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from flowledger.app import b64
from flowledger.errors import CursorError

#: The ``flowledger_meta`` key of the per-database secret.
META_KEY = "cursor_secret"


def _digest(filters: dict[str, Any]) -> str:
    text = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CursorCodec:
    """Encodes and checks cursors with one key."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a cursor key must not be empty")
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, kind: str, filters: dict[str, Any], created_at: datetime, id: str) -> str:
        """The cursor after the item ``(created_at, id)`` of listing ``kind``."""
        return self._seal(kind, filters, {"t": created_at.isoformat(), "i": id})

    def decode(self, kind: str, filters: dict[str, Any], token: str) -> tuple[datetime, str]:
        """The position a cursor names; InvalidInputError unless this codec made it for
        this listing and these filters."""
        data = self._open(kind, filters, token)
        try:
            return datetime.fromisoformat(data["t"]), str(data["i"])
        except (ValueError, KeyError, TypeError):
            raise _refused() from None

    def encode_offset(self, kind: str, filters: dict[str, Any], offset: int) -> str:
        """The cursor of a listing in an order keyset paging cannot follow (entities by
        payload fields): the position by count, signed like the others."""
        return self._seal(kind, filters, {"o": offset})

    def decode_offset(self, kind: str, filters: dict[str, Any], token: str) -> int:
        data = self._open(kind, filters, token)
        offset = data.get("o")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise _refused()
        return offset

    def _seal(self, kind: str, filters: dict[str, Any], position: dict[str, Any]) -> str:
        body = {"k": kind, "q": _digest(filters), **position}
        payload = json.dumps(body, separators=(",", ":")).encode()
        return f"{b64.encode(payload)}.{b64.encode(self._mac(payload))}"

    def _open(self, kind: str, filters: dict[str, Any], token: str) -> dict[str, Any]:
        try:
            head, _, tail = token.partition(".")
            # Strictly (app.b64): a cursor edited where the decoder ignores bits is refused.
            payload, mac = b64.decode(head), b64.decode(tail)
        except (ValueError, UnicodeError):
            raise _refused() from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise _refused()
        try:
            data = json.loads(payload)
            same = data["k"] == kind and data["q"] == _digest(filters)
        except (ValueError, KeyError, TypeError):
            raise _refused() from None
        if not same:
            raise CursorError(
                "this cursor belongs to another listing or other filters; "
                "start again without a cursor",
                ("cursor",),
            )
        return dict(data)


def _refused() -> CursorError:
    return CursorError(
        "the cursor is not valid: use a nextCursor exactly as a listing returned it",
        ("cursor",),
    )

"""Keyset pages, newest first: one rule for every listing of the application layer.

A listing asks its store for ``limit + 1`` rows after the cursor's position (one more
tells whether another page follows), keeps ``limit`` and seals the last one's position
into ``nextCursor`` (app.cursors).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from flowledger.app.cursors import CursorCodec
from flowledger.config import Limits
from flowledger.runtime.engine import Engine

R = TypeVar("R")
Position = tuple[datetime, str]
Codec = Callable[[], Awaitable[CursorCodec]]


class Listing:
    """Base of the operation classes with listings: the engine, the cursor codec (made on
    first use: it may read the database's secret) and the configured limits."""

    def __init__(self, engine: Engine, codec: Codec, limits: Limits | None = None) -> None:
        self._engine = engine
        self._codec = codec
        self._limits = limits or Limits()


def created_position(row: Any) -> Position:
    """A row's place in a listing newest first by ``created_at``, its ``id`` breaking ties
    (the usual order: executions, subscriptions, tokens)."""
    return row["created_at"], str(row["id"])


async def keyset_page(
    codec: CursorCodec,
    kind: str,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
    fetch: Callable[[int, Position | None], Awaitable[list[R]]],
    position: Callable[[R], Position],
) -> tuple[list[R], str | None]:
    """The rows of one page and the cursor of the next (None: this is the last)."""
    before = codec.decode(kind, filters, cursor) if cursor is not None else None
    rows = await fetch(limit + 1, before)
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    at, key = position(page[-1])
    return page, codec.encode(kind, filters, at, key)

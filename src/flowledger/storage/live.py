"""Change feeds: how one process learns that another committed events of an execution.

A :class:`Change` says "execution X committed events ``first_seq..last_seq``". It is a
hint, never the data: whoever hears one reads the truth back from the store, so a
duplicated or coalesced change costs a read and nothing else.

- **PostgreSQL**: LISTEN/NOTIFY on :data:`CHANNEL` (payload ``"<id> <first> <last>"``).
  Each process that commits publishes (``pg_notify`` over its own small autocommit
  connection, batched per event-loop tick, off the engine's commit path); listeners hold
  one connection named :data:`LISTENER_NAME`. Nobody listening, nothing sent: a
  publisher asks ``pg_stat_activity`` whether a listener exists at most once per
  :data:`PRESENCE_TTL` (so an API node that just started listening may hear its first
  changes up to that late; waiters re-check on their own, see ``app.changes``).
- **SQLite**: no channel between processes, but one file on one machine and one writer
  at a time, so the ``rowid`` of ``execution_events`` grows in commit order. The feed
  tails it (``WHERE rowid > ?``: a range scan of new rows only) every
  :data:`SQLITE_POLL` seconds on its own read-only connection in a thread, and only
  while the hub has someone waiting. (A prune that deletes the newest rows could let
  rowids be reused; a missed hint then costs a waiter its recheck interval.)
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from flowledger.logs import log_extra

_T = TypeVar("_T")

log = logging.getLogger(__name__)

#: The channel execution changes are NOTIFYed on (work wake-ups have their own).
CHANNEL = "flowledger_executions"
#: ``application_name`` of listening connections: publishers look for it.
LISTENER_NAME = "flowledger-live"
#: How long a publisher trusts its answer to "is anyone listening?".
PRESENCE_TTL = 1.0
#: How often the SQLite feed looks for new events while someone waits.
SQLITE_POLL = 0.03
#: After a pause, the SQLite feed looks at no more than this many rows it missed.
MAX_BEHIND = 10_000
#: Back-off before a lost PostgreSQL listener connects again.
RECONNECT_DELAY = 1.0


@dataclass(frozen=True)
class Change:
    execution_id: str
    #: The first and last event seq committed (0 when unknown).
    first_seq: int
    last_seq: int


Deliver = Callable[[Sequence[Change]], None]


class ChangeFeed:
    """The cross-process part of the change hub; this base (one process only) is silent."""

    #: Keep :meth:`run` going once started (a listener is worth keeping; a poll is not).
    keep_running = False

    def prime(self) -> None:
        """Note where the database is now, before a waiter reads it (called when one
        subscribes): what commits from here on is heard, even before :meth:`run` runs."""

    async def publish(self, changes: Sequence[Change]) -> None:
        """Tell other processes (nothing to do where they find changes on their own)."""

    async def run(self, deliver: Deliver) -> None:
        """Call ``deliver`` with changes other processes commit, until cancelled."""
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


def _parse(payload: str) -> Change | None:
    parts = payload.split(" ")
    try:
        return Change(parts[0], int(parts[1]), int(parts[2]))
    except (IndexError, ValueError):
        return Change(parts[0], 0, 0) if parts and parts[0] else None


class SQLiteFeed(ChangeFeed):
    """Tails ``execution_events`` by rowid. The position survives between runs (the
    hub stops polling when nobody waits), so nothing committed while a waiter was
    subscribing is missed; after a long pause only the last :data:`MAX_BEHIND` rows
    are looked at."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._last: int | None = None
        # Every use of the connection holds this, and so does closing it: a poll still
        # running in its thread after the pump was cancelled must not meet a connection
        # closed under it (sqlite3 then crashes the process in libsqlite3: seen in CI).
        self._lock = threading.Lock()
        self._closed = False

    def _with_connection(self, read: Callable[..., _T], *args: Any) -> _T:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the change feed is closed")
            if self._conn is None:
                uri = Path(self._path).resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
            return read(self._conn, *args)

    def prime(self) -> None:
        # Microseconds (the last page of the rowid B-tree): fine on the event loop.
        if self._last is None:
            try:
                self._last = self._with_connection(_max_rowid)
            except sqlite3.Error:
                self._last = None

    async def run(self, deliver: Deliver) -> None:
        newest = await asyncio.to_thread(self._with_connection, _max_rowid)
        last = newest if self._last is None else max(self._last, newest - MAX_BEHIND)
        while True:
            try:
                last, changes = await asyncio.to_thread(self._with_connection, _changes_after, last)
                self._last = last
            except sqlite3.Error as exc:  # busy, or a checkpoint: try next time
                log.debug("tailing events failed: %s", exc, extra=log_extra("poll_changes"))
                changes = []
            if changes:
                deliver(changes)
            await asyncio.sleep(SQLITE_POLL)

    async def close(self) -> None:
        # In a thread: it waits for a poll still running there to finish first.
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


def _max_rowid(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(rowid) FROM execution_events").fetchone()
    return int(row[0] or 0)


def _changes_after(conn: sqlite3.Connection, last: int) -> tuple[int, list[Change]]:
    rows = conn.execute(
        "SELECT rowid, execution_id, seq FROM execution_events WHERE rowid > ? ORDER BY rowid",
        (last,),
    ).fetchall()
    spans: dict[str, tuple[int, int]] = {}
    for rowid, execution_id, seq in rows:
        last = max(last, int(rowid))
        first, high = spans.get(execution_id, (seq, seq))
        spans[execution_id] = (min(first, seq), max(high, seq))
    return last, [Change(k, first, high) for k, (first, high) in spans.items()]


def open_feed(db_url: str) -> ChangeFeed:
    """The change feed that suits the database of ``db_url``."""
    if db_url.startswith("postgres"):
        from flowledger.storage.live_postgres import PostgresFeed  # psycopg only when needed

        return PostgresFeed(db_url)
    database = make_url(db_url).database or ""
    if database and database != ":memory:":
        return SQLiteFeed(database)
    return ChangeFeed()  # an in-memory database: one process by definition

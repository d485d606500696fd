"""The PostgreSQL change feed: NOTIFY on publish, LISTEN in the feed (see ``storage.live``).

Its own module so that psycopg is imported only for a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from flowledger.logs import log_extra
from flowledger.storage.live import (
    CHANNEL,
    LISTENER_NAME,
    PRESENCE_TTL,
    RECONNECT_DELAY,
    Change,
    ChangeFeed,
    Deliver,
    _parse,
)
from flowledger.storage.postgres import CONNECT_TIMEOUT, psycopg_url

log = logging.getLogger("flowledger.storage.live")


class PostgresFeed(ChangeFeed):
    keep_running = True

    def __init__(self, url: str) -> None:
        self._conninfo = psycopg_url(url).set(drivername="postgresql").render_as_string(False)
        self._sender: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._listened_at = 0.0
        self._listening = False

    async def _connect(self, name: str) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo,
            application_name=name,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
        )

    async def publish(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        async with self._lock:  # one batch at a time on the one sender connection
            try:
                if self._sender is None or self._sender.closed:
                    self._sender = await self._connect("flowledger-notify")
                if not await self._anyone_listening(self._sender):
                    return
                payloads = [(CHANNEL, f"{c.execution_id} {c.first_seq} {c.last_seq}")
                            for c in changes]  # fmt: skip
                async with self._sender.cursor() as cursor:
                    await cursor.executemany("SELECT pg_notify(%s, %s)", payloads)
            except psycopg.Error as exc:
                log.warning("could not publish execution changes: %s", exc,
                            extra=log_extra("notify_changes"))  # fmt: skip
                await self._drop_sender()

    async def _anyone_listening(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        now = time.monotonic()
        if now - self._listened_at >= PRESENCE_TTL:
            cursor = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database())",
                (LISTENER_NAME,),
            )
            row = await cursor.fetchone()
            self._listening = bool(row and row[0])
            self._listened_at = now
        return self._listening

    async def run(self, deliver: Deliver) -> None:
        while True:
            try:
                listener = await self._connect(LISTENER_NAME)
            except psycopg.Error as exc:
                log.warning("cannot listen for execution changes: %s", exc,
                            extra=log_extra("listen_changes"))  # fmt: skip
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            try:
                await listener.execute(f"LISTEN {CHANNEL}")
                async for note in listener.notifies():
                    change = _parse(note.payload)
                    if change is not None:
                        deliver([change])
            except psycopg.Error as exc:
                log.warning("listening for execution changes failed: %s", exc,
                            extra=log_extra("listen_changes"))  # fmt: skip
                await asyncio.sleep(RECONNECT_DELAY)
            finally:
                await listener.close()

    async def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender.close()

    async def close(self) -> None:
        async with self._lock:
            await self._drop_sender()

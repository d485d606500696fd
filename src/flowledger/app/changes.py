"""The change hub: wake whoever waits on an execution as soon as its events commit.

Nothing here polls every few seconds. Three sources feed one hub per application:

- **this process**: the hub is an observer of the engine (``events_committed`` runs
  right after each commit) and :meth:`ChangeHub.touched` is called when the app layer
  creates an execution; waiters here wake at once;
- **other processes on PostgreSQL**: the hub republishes what this process commits on a
  NOTIFY channel and listens on it (``storage.live_postgres.PostgresFeed``); the listener starts
  with the first waiter and stays for the application's life;
- **other processes on SQLite**: ``storage.live.SQLiteFeed`` tails the events table every
  30 ms, only while someone in this process waits.

A change is a hint: subscribers re-read the store, so a duplicate (on PostgreSQL a
process hears its own NOTIFYs too) costs one read. Subscribers also re-check every
:data:`RECHECK` seconds on their own, which bounds the damage of a hint lost while a
listener reconnected or a publisher still believed nobody listened.

Cost when nobody watches: the observer is attached on the first subscription (SQLite),
or at open on PostgreSQL where other processes may watch; there a publisher sends
nothing unless a listener exists (``storage.live``). Measured costs are in bench/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from flowledger.logs import log_extra
from flowledger.runtime.engine import Engine
from flowledger.runtime.observer import BaseObserver, CommittedEvents
from flowledger.storage.live import Change, ChangeFeed, open_feed

log = logging.getLogger(__name__)

#: A subscriber re-reads the store at least this often, whatever it heard.
RECHECK = 1.0


class Subscription:
    """What one waiter (a long poll, an event stream) hears: changes of one execution,
    or of every execution (``execution_id`` None)."""

    def __init__(self, execution_id: str | None) -> None:
        self.execution_id = execution_id
        self._changes: list[Change] = []
        self._event = asyncio.Event()

    def end(self) -> None:
        """Wake its waiter now (the server stops: ChangeHub.end_waits)."""
        self._event.set()

    def _hear(self, change: Change) -> None:
        self._changes.append(change)
        self._event.set()

    async def wait(self, timeout: float) -> list[Change]:
        """The changes heard since the last call, once there is one, or [] after
        ``timeout`` seconds."""
        if not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()
        changes, self._changes = self._changes, []
        return changes


class ChangeHub(BaseObserver):
    """One per application: subscriptions, the engine observer, the cross-process feed."""

    def __init__(self, engine: Engine, feed: ChangeFeed | None = None) -> None:
        self._engine = engine
        self._feed = feed
        self._by_id: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._observing = False
        self._pump: asyncio.Task[None] | None = None
        self._outbox: dict[str, Change] = {}
        self._flush: asyncio.Task[None] | None = None
        #: The server stops: every wait answers now, as things are (``end_waits``).
        self.ending = False

    @property
    def feed(self) -> ChangeFeed:
        if self._feed is None:
            self._feed = open_feed(self._engine.db_url)
        return self._feed

    async def open(self) -> None:
        """Publish this process's commits when other processes may be watching."""
        if self._engine.db_url.startswith("postgres"):
            self._observe()

    async def close(self) -> None:
        for task in (self._pump, self._flush):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._pump = self._flush = None
        if self._feed is not None:
            await self._feed.close()

    def end_waits(self) -> None:
        """Wake every waiter for good: the server is stopping, and a long poll must not
        hold its shutdown for the rest of its wait (up to a minute). Waits that begin
        after this do not wait."""
        self.ending = True
        for subs in (self._all, *self._by_id.values()):
            for sub in subs:
                sub.end()

    def _observe(self) -> None:
        if not self._observing:
            self._observing = True
            self._engine.add_observer(self)

    # -- subscribing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, execution_id: str | None = None) -> Iterator[Subscription]:
        """Hear the changes of ``execution_id`` (None: of every execution) while inside.
        Subscribe first, then read the store: a change in between is not lost."""
        sub = Subscription(execution_id)
        self.feed.prime()
        if execution_id is None:
            self._all.add(sub)
        else:
            self._by_id.setdefault(execution_id, set()).add(sub)
        self._observe()
        self._start_pump()
        try:
            yield sub
        finally:
            if execution_id is None:
                self._all.discard(sub)
            else:
                subs = self._by_id.get(execution_id)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_id[execution_id]
            self._maybe_stop_pump()

    @property
    def watching(self) -> int:
        """How many subscriptions are open (tests and metrics)."""
        return len(self._all) + sum(len(s) for s in self._by_id.values())

    def _start_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run_feed())

    def _maybe_stop_pump(self) -> None:
        if self.watching or self._pump is None or self.feed.keep_running:
            return
        self._pump.cancel()
        self._pump = None

    async def _run_feed(self) -> None:
        try:
            await self.feed.run(self._deliver)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the change feed stopped", extra=log_extra("change_feed"))

    # -- hearing -----------------------------------------------------------------------------

    def _deliver(self, changes: Sequence[Change]) -> None:
        for change in changes:
            for sub in self._by_id.get(change.execution_id, ()):
                sub._hear(change)
            for sub in self._all:
                sub._hear(change)

    def events_committed(self, batch: CommittedEvents) -> None:
        events: Sequence[dict[str, Any]] = batch.events
        if not events:
            return
        self.touched(batch.execution_id, int(events[0]["seq"]), int(events[-1]["seq"]))

    def touched(self, execution_id: str, first_seq: int = 0, last_seq: int = 0) -> None:
        """Events ``first_seq..last_seq`` of ``execution_id`` were committed here."""
        change = Change(execution_id, first_seq, last_seq)
        self._deliver([change])
        if not self._engine.db_url.startswith("postgres"):
            return  # other SQLite processes tail the table themselves
        known = self._outbox.get(execution_id)
        if known is not None:
            change = Change(execution_id, min(known.first_seq, first_seq), last_seq)
        self._outbox[execution_id] = change
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        await asyncio.sleep(0)  # let the rest of this tick's commits join the batch
        while self._outbox:
            batch, self._outbox = list(self._outbox.values()), {}
            await self.feed.publish(batch)

"""``ctx.heartbeat(details)``: a long step's progress, saved durably and given to its next
attempt as ``ctx.heartbeat_details`` (Temporal's activity heartbeat details), so a
2-hour export cut by a dead process resumes from its last page instead of from zero.

The details live in the attempt's stored state, under the engine's key
(runtime.reserved), and are copied to the attempt after it. Saving is throttled: the
first call is written at once, later ones within :data:`HEARTBEAT_EVERY` are folded into
one write at the end of that window (the latest value wins), so a tight loop calling it
costs a commit a second, not one per call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from flowledger.runtime.reserved import engine_part, with_engine_part
from flowledger.runtime.state import StepExecution

#: Seconds between two saves of one attempt's heartbeat.
HEARTBEAT_EVERY = 1.0
#: The engine's key for the details in a step's stored state.
HEARTBEAT_KEY = "heartbeat"


def heartbeat_details(run: StepExecution) -> Any:
    """The details last saved by this step's attempts (None: none saved yet)."""
    if run.state is None:  # a first attempt's, every step's: no part of the engine's to ask
        return None
    return engine_part(run.state).get(HEARTBEAT_KEY)


def carry_heartbeat(previous: StepExecution, nxt: StepExecution) -> None:
    """Give the attempt ``nxt`` what ``previous`` saved: stored with it, so an attempt cut
    before its own first heartbeat hands the same details on."""
    details = heartbeat_details(previous)
    if details is not None:
        nxt.state = with_engine_part(nxt.state, **{HEARTBEAT_KEY: details})


class Heartbeat:
    """One attempt's throttled saver; callable from the event loop or a handler's thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        save: Callable[[Any], None],
        every: float = HEARTBEAT_EVERY,
    ) -> None:
        self._loop = loop
        self._save = save  # runs on the loop
        self._every = every
        self._lock = threading.Lock()
        self._latest: Any = None
        self._scheduled = False
        self._last_write = float("-inf")

    def __call__(self, details: Any) -> None:
        with self._lock:
            self._latest = details
            if self._scheduled:
                return  # a write is due already: it takes this value
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        wait = max(0.0, self._last_write + self._every - self._loop.time())
        self._loop.call_later(wait, self._write)

    def _write(self) -> None:
        with self._lock:
            details, self._scheduled = self._latest, False
        self._last_write = self._loop.time()
        self._save(details)

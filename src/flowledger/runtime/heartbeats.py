"""``ctx.heartbeat(details)``: a long step's progress, saved durably and given to its next
attempt as ``ctx.heartbeat_details`` (Temporal's activity heartbeat details), so a
2-hour export cut by a dead process resumes from its last page instead of from zero.

The details live in the attempt's stored state, under the engine's key
(runtime.reserved), and are copied to the attempt after it. Saving is throttled: the
first call is written at once, later ones within :data:`HEARTBEAT_EVERY` are folded into
one write at the end of that window (the latest value wins), so a tight loop calling it
costs a commit a second, not one per call.

A step's ``heartbeat_timeout`` is watched by :class:`HeartbeatWatch`: an attempt whose
handler goes that long without a call is ended, as its ``timeout`` would end it, and
retried under its ``retry`` (code ``timeout.heartbeat``). A hung export is found in a
minute, not at the end of a six-hour ``timeout``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from flowledger.runtime.reserved import engine_part, with_engine_part
from flowledger.runtime.state import StepExecution
from flowledger.steps.base import StepContext

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
            if not self._scheduled:
                return  # flushed already
            details, self._scheduled = self._latest, False
        self._last_write = self._loop.time()
        self._save(details)

    def flush(self) -> None:
        """Write now a value still waiting for its window: its attempt is ending, and the
        next one resumes from it (on the event loop)."""
        with self._lock:
            pending = self._scheduled
        if pending:
            self._write()


class HeartbeatWatch:
    """Ends an attempt whose handler went ``seconds`` without a ``ctx.heartbeat``,
    counted from the attempt's start (or its resume), by expiring the attempt's own
    ``asyncio.timeout``: asyncio then cancels the handler and tells that cancellation
    from any other, as it does for the step's ``timeout``.

    One timer at a time, re-armed for the latest heartbeat when it comes due: a handler
    that beats in a tight loop (from a thread too) costs nothing more than its calls."""

    def __init__(self, ctx: StepContext, seconds: float) -> None:
        self.ctx = ctx
        self.seconds = seconds
        #: The watch expired the attempt's deadline (not the step's ``timeout``).
        self.fired = False
        self._since = 0.0
        self._deadline: asyncio.Timeout | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, deadline: asyncio.Timeout) -> None:
        self._deadline = deadline
        self._since = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self.seconds, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        beat = self.ctx.heartbeat_at
        last = self._since if beat is None or beat < self._since else beat
        idle = time.monotonic() - last
        loop = asyncio.get_running_loop()
        if idle < self.seconds:
            self._timer = loop.call_later(self.seconds - idle, self._check)
            return
        self._timer = None
        self.fired = True
        assert self._deadline is not None  # start() gave it
        self._deadline.reschedule(loop.time())  # expires at the loop's next turn

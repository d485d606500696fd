"""When one execution's scheduler wakes: its step timers and the wait a round ends in.

The timers (a retry's back-off, a parked step's wake, a step's due time) are a heap of
``(when, seq, kind, run)``; what each does when due is runtime.activation's. The wait
is one future, ended by a finished handler, a poke, a drain or the one loop timer kept
across waits for the soonest of those timers (runtime.runner awaits it).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Sized
from datetime import datetime

from flowledger.runtime.eager import ready_queue
from flowledger.runtime.ports import TimerKind
from flowledger.runtime.state import StepExecution
from flowledger.runtime.status import StepStatus


class Wakes:
    """The timers and the wait of one execution's scheduler."""

    def __init__(self) -> None:
        self.timers: list[tuple[datetime, int, TimerKind, StepExecution]] = []
        self._timer_seq = itertools.count()
        #: What the scheduler's wait awaits (see ExecutionRunner._wait); None while it
        #: does not wait.
        self.waiter: asyncio.Future[None] | None = None
        #: The running loop, from the first wait or launch.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The one wake-up timer, kept across waits (see ``arm``).
        self._timer: asyncio.TimerHandle | None = None
        #: What the running loop has ready to run (runtime.eager.ready_queue), from the
        #: first wait or launch; None where the loop does not say.
        self.others: Sized | None = None

    def add_timer(self, when: datetime, kind: TimerKind, run: StepExecution) -> None:
        heapq.heappush(self.timers, (when, next(self._timer_seq), kind, run))

    def next_timer(self) -> datetime | None:
        """When the earliest timer that still acts is due (stale ones, of steps that ended
        or woke otherwise, left out), or None."""
        live = [when for when, _, kind, run in self.timers if acts(kind, run)]
        return min(live, default=None)

    def wake(self) -> None:
        """End the scheduler's current wait, if it is waiting."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def arm(self, seconds: float) -> None:
        """Wake the wait within ``seconds``: one timer kept across waits, re-armed only when a
        sooner one is needed. A timeout per wait armed and cancelled a timer on every round
        of a chain; an early wake-up from a kept timer costs one extra pass of the loop."""
        loop = self.running_loop()
        when = loop.time() + seconds
        if self._timer is not None and self._timer.when() <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._timer_fired)

    def disarm(self) -> None:
        """The run ends: its kept timer goes with it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timer_fired(self) -> None:
        self._timer = None
        self.wake()

    def running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self.others = ready_queue(loop)
        return loop


def acts(kind: TimerKind, run: StepExecution) -> bool:
    """The timer would still move ``run`` on when it fires (see
    Activation.fire_due_timers)."""
    if run.scope.closed:
        return False
    if kind == "retry":
        return run.status == StepStatus.NOT_STARTED
    if kind == "wake":
        return run.suspended and run.wake_at is not None and not run.terminal
    return not run.terminal

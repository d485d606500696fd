"""The executions an engine runs right now, by id: one run of each here at a time.

A drive (``drive``, ``run``, ``settle``) or a worker's run registers here: a second
drive of one joins the first instead of taking the lease from it (the same owner may
always take its own lease), signals for one poke its runner, and ``close`` gives them
all back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from flowledger.errors import EngineClosedError, FlowledgerError
from flowledger.runtime.runner import ExecutionRunner
from flowledger.storage import Store
from flowledger.timeutil import Clock

#: How long ``close`` then waits for cancelled runs to give their executions back.
CLOSE_CANCEL_WAIT = 10.0


class Run:
    """An execution this engine runs right now: the task running it (``drive``, or a
    worker's ``run_owned``), its runner once made, and an event set when it stops."""

    __slots__ = ("closed", "done", "finishing", "runner", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.done = asyncio.Event()
        self.runner: ExecutionRunner | None = None
        #: ``close`` cancelled it: its drive says so (EngineClosedError), not CancelledError.
        self.closed = False
        #: Its run has returned; what remains is the children's end and the release.
        self.finishing = False


def closed_error(execution_id: str) -> EngineClosedError:
    return EngineClosedError(
        f"the engine was closed while it ran execution {execution_id}: the steps that "
        "ran are recorded and its lease is released, so the next process that runs it "
        "(a worker, a settle) carries it on"
    )


class RunsHere:
    """The runs of one engine; ``store`` is the engine's (EngineClosedError when closed)."""

    def __init__(self, store: Callable[[], Store], clock: Clock) -> None:
        self._store = store
        self._clock = clock
        #: Executions this engine runs right now, by id (``drive``, ``run``, ``settle`` and
        #: a worker's ``run_owned``).
        self.by_id: dict[str, Run] = {}
        #: ``close`` is giving them back: nothing new starts, what runs drains.
        self.closing = False
        #: Hears the signals other processes send to what this runs (watch_signals); its
        #: own it hears from its store (Store.hear_signals, set up by Engine.open).
        self._signal_watch: asyncio.Task[None] | None = None
        #: Tasks of its own it must hold a reference to (_background).
        self._tasks: set[asyncio.Task[None]] = set()

    def enter(self, execution_id: str, task: asyncio.Task[Any] | None) -> Run:
        entry = Run(task)
        self.by_id[execution_id] = entry
        return entry

    def leave(self, execution_id: str, entry: Run) -> None:
        if self.by_id.get(execution_id) is entry:
            del self.by_id[execution_id]
        entry.done.set()

    def runners(self) -> list[ExecutionRunner | None]:
        """What this engine runs now, one per execution (None: its run is starting)."""
        return [entry.runner for entry in self.by_id.values() if not entry.finishing]

    def take_up(
        self, execution_id: str, epoch: int, work: Callable[[], Coroutine[Any, Any, None]]
    ) -> asyncio.Task[None] | None:
        """Engine.take_up, once the engine is known open."""
        ahead = self.by_id.get(execution_id)
        if ahead is not None:
            self._background(self._release_after(ahead, execution_id, epoch))
            return None
        entry = Run(None)
        task = asyncio.get_running_loop().create_task(work())
        entry.task = task
        self.by_id[execution_id] = entry
        task.add_done_callback(lambda _: self.leave(execution_id, entry))
        return task

    async def _release_after(self, ahead: Run, execution_id: str, epoch: int) -> None:
        await ahead.done.wait()
        with contextlib.suppress(FlowledgerError):  # closed meanwhile: the lease lapses
            await self._store().release_lease(execution_id, epoch, self._clock.lease_now())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # held: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def give_back(self, grace: float) -> None:
        """Drain what this engine runs (see Engine.close), then cancel what is left."""
        me = asyncio.current_task()
        running = [e for e in self.by_id.values() if e.task is not me]
        for entry in running:
            if entry.runner is not None:
                entry.runner.drain()  # one still taking its lease drains once it runs
        ends = [asyncio.ensure_future(entry.done.wait()) for entry in running]
        if not ends:
            return
        try:
            _, late = await asyncio.wait(ends, timeout=grace)
            if late:
                for entry in running:
                    if not entry.done.is_set() and entry.task is not None:
                        entry.closed = True
                        entry.task.cancel()
                await asyncio.wait(late, timeout=CLOSE_CANCEL_WAIT)
        finally:
            for end in ends:
                end.cancel()

    def poke(self, execution_id: str) -> None:
        """A signal was just sent to ``execution_id`` (by this engine's store, or by another
        process: Store.watch_signals): if this engine runs it (``serve``'s worker, a
        ``drive``), it looks now rather than at its next poll (up to
        runtime.inbox.POLL_INTERVAL later). Tour 22C: a cancel sent in a run's last second
        was often not seen before the run completed."""
        entry = self.by_id.get(execution_id)
        if entry is not None and entry.runner is not None:
            entry.runner.poke()

    def watch_signals(self) -> None:
        """Once this engine runs an execution: a signal another process sends to one it
        runs makes it look at once, not at its next poll (up to
        runtime.inbox.POLL_INTERVAL later). PostgreSQL only (Store.watch_signals)."""
        if self._signal_watch is None:
            watching = self._store().watch_signals(self.poke)
            self._signal_watch = asyncio.get_running_loop().create_task(watching)

    async def stop_watching(self) -> None:
        watch, self._signal_watch = self._signal_watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

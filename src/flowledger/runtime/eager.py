"""Start a step's work at once, inside the caller's turn of the event loop, as its own task.

A task's first step runs one loop turn after ``create_task``, and whoever waits for it
wakes one more turn after it ends. Most handlers of a chain return without ever waiting
(a transform, a lookup in memory), so that was two turns per step for nothing. Here the
work's first step runs right away, the way Python 3.12's eager tasks run it: inside the
task's own context (``contextvars``) and with ``asyncio.current_task()`` answering the
task, so ``asyncio.timeout``, anyio cancel scopes and anything else keyed by the current
task see one task from the first step to the last. Work that finished in that first step
is answered by an already-done future; work that waits goes on in the task.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task  # what 3.12's eager tasks use too
from collections.abc import Callable, Coroutine, Generator
from typing import Any

Finished = Callable[["asyncio.Future[Any]"], None]


def start_eagerly(
    work: Coroutine[Any, Any, Any], name: str, finished: Finished
) -> asyncio.Future[Any]:
    """Run ``work``'s first step now; the answer is a done future when that ended it.
    Otherwise the task running the rest is answered, and ``finished(task)`` is called in
    the loop turn it ends in (not one turn later, as a done callback would be)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    rest = _Rest(work, finished)
    task = loop.create_task(rest, name=name, context=context)
    rest.task = task
    caller = asyncio.current_task(loop)
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, task)
    try:
        context.run(rest.first)
    finally:
        _leave_task(loop, task)
        if caller is not None:
            _enter_task(loop, caller)
    return rest.outcome if rest.outcome is not None else task


class _Rest(Coroutine[Any, Any, Any]):
    """The task's coroutine: it hands the task what the eager first step waits for, then
    drives the work on as the task would have driven it (send, throw, close)."""

    __slots__ = ("finished", "outcome", "pending", "task", "work", "yielded")

    def __init__(self, work: Coroutine[Any, Any, Any], finished: Finished) -> None:
        self.work = work
        self.finished = finished
        self.task: asyncio.Task[Any] | None = None
        #: Set when the first step ended the work: its result, exception or cancellation.
        self.outcome: asyncio.Future[Any] | None = None
        #: What the first step waits for (a future, or None for a bare yield), until the
        #: task's own first step takes it.
        self.yielded: Any = None
        self.pending = True

    def first(self) -> None:
        try:
            self.yielded = self.work.send(None)
        except StopIteration as stop:
            self.outcome = _done(stop.value, None)
        except asyncio.CancelledError:
            self.outcome = _done(None, None)
            self.outcome.cancel()
        except (KeyboardInterrupt, SystemExit):
            raise  # as a task's step re-raises them: the loop stops
        except BaseException as exc:
            self.outcome = _done(None, exc)

    def send(self, value: Any) -> Any:
        if self.outcome is not None:
            raise StopIteration(None)  # ended in its first step; ``outcome`` answered it
        if self.pending:
            self.pending = False
            return self.yielded
        return self._ending(self.work.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if self.outcome is not None:
            raise StopIteration(None)
        if self.pending:
            # Cancelled before the task's first step: the work waits at its first yield; as
            # a task cancels the future it waits for, cancel that one, then throw in there.
            self.pending = False
            if isinstance(self.yielded, asyncio.Future):
                self.yielded.cancel()
        if val is None and tb is None:
            return self._ending(self.work.throw, typ)
        return self._ending(lambda exc: self.work.throw(typ, exc, tb), val)

    def close(self) -> None:
        self.work.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("only its task drives it")

    def _ending(self, step: Callable[[Any], Any], arg: Any) -> Any:
        try:
            return step(arg)
        except BaseException:
            # The work ended (returned, raised, or was cancelled): tell the owner now.
            assert self.task is not None
            self.finished(self.task)
            raise


def _done(result: Any, error: BaseException | None) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
    return future

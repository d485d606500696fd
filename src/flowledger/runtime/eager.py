"""A step's task started eagerly: its handler runs at once, inside the launching round,
up to its first real suspension, instead of one event-loop turn later.

A chain of quick steps spent two loop turns a step: one for the new task's first step,
one for the scheduler's wake-up when it ended. A handler that returns without suspending
now ends inside the launch, and the scheduler collects it without waiting; it lets the
loop turn only when something else is ready to run, or has waited a while
(runtime.runner). bench/step_instructions.py: 491,330 -> 458,734 instructions a W1 step
(-6.6%).

Python 3.12 has this as ``asyncio.Task(..., eager_start=True)``. Python 3.11 does not;
there the task is made as usual, the one step it scheduled is taken back off the loop's
ready queue and run here, and meanwhile the task is made the loop's current one with
asyncio's own ``_enter_task``/``_leave_task``, the same swap 3.12 makes, so that what
reads the current task inside the handler (``asyncio.timeout``, ``TaskGroup``, anyio's
cancel scopes) finds the step's task, before and after a suspension.

Decision: asyncio's private names on 3.11, where 3.11 gets security fixes only and its
asyncio no longer changes. Wherever the emulation could not be sure it runs the task's
own step (a loop without a ``_ready`` deque, such as uvloop's; a task factory set; the
queue not grown by exactly that one step) the task starts the ordinary way. An earlier
emulation (docs/performance.md, 2026-11-29: a hand-driven coroutine) was taken out for
a wall-time gain inside the noise; this one is counted in instructions, and the
scheduler's wait goes with the task's turn.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Coroutine, Sized
from typing import Any

__all__ = ["ready_queue", "start_task"]


def ready_queue(loop: asyncio.AbstractEventLoop) -> Sized | None:
    """What ``loop`` has ready to run this turn, or None where the loop does not say (a
    loop without asyncio's ``_ready`` deque, such as uvloop's): a scheduler whose steps
    end in their launch lets the loop turn when anything else is ready (runtime.runner)."""
    ready = getattr(loop, "_ready", None)
    return ready if type(ready) is deque else None


if sys.version_info >= (3, 12):

    def start_task(
        loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, Any], name: str
    ) -> asyncio.Task[Any]:
        """A task running ``work``, already run up to its first suspension."""
        if loop.get_task_factory() is not None:  # the factory decides how tasks start
            return loop.create_task(work, name=name)
        return asyncio.Task(work, loop=loop, name=name, eager_start=True)  # type: ignore[call-arg,unused-ignore]

else:
    from asyncio.tasks import _enter_task, _leave_task

    def start_task(
        loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, Any], name: str
    ) -> asyncio.Task[Any]:
        """A task running ``work``, already run up to its first suspension."""
        ready = ready_queue(loop)
        if ready is None or loop.get_task_factory() is not None:
            return loop.create_task(work, name=name)
        queued = len(ready)
        # What the loop's create_task does without a factory, less its frame and its
        # check that the loop is open (it runs this very code).
        task = asyncio.Task(work, loop=loop, name=name)
        if len(ready) != queued + 1:  # not the one step we know of: the loop runs it
            return task
        assert isinstance(ready, deque)
        first_step = ready.pop()  # the task's own: call_soon appends on the right
        launcher = asyncio.current_task(loop)
        if launcher is not None:  # a task runs inside no other (asyncio checks it)
            _leave_task(loop, launcher)
        try:
            first_step._run()
        finally:
            if launcher is not None:
                _enter_task(loop, launcher)
        return task

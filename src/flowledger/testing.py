"""Helpers for testing your own step types: a real ``StepContext`` to call a handler with.

A step type made with ``@step_type`` is still its function, so a unit test calls it::

    async with step_context() as ctx:
        out = await send_email(SendEmailInput(to="ada@example.com"), ctx)

A step that writes entities or saves files gets an open ``Engine``'s (on ``sqlite://``,
an in-memory database): ``step_context(engine=engine)``. To run whole workflows in tests,
use such an ``Engine``: see the README's "Testing workflows". Given a
:class:`VirtualClock` (``Engine("sqlite://", clock=clock)``), a workflow that waits days
(``sys.delay: 2d``, a ``due: 3d``, a retry's back-off) runs in a test at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx

from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.steps.base import StepContext, VariableAccess, VariableOp
from flowledger.steps.builtins import apply_variable_op
from flowledger.steps.entity_access import EntityAccess
from flowledger.timeutil import Clock, utcnow

#: How often a skip looks whether the runs wait (seconds of real time).
_LOOK_EVERY = 0.005


class _EntityStore(Protocol):
    def bind(self, execution_id: str, depth: int) -> EntityAccess: ...


class _ArtifactFolder(Protocol):
    def bind(self, execution_id: str, step_execution_id: str, step_id: str) -> ArtifactAccess: ...


class OpenEngine(Protocol):
    """What ``step_context`` uses of an open ``flowledger.Engine`` (named so: this module
    sits below the runtime, which it is a helper for)."""

    @property
    def entities(self) -> _EntityStore: ...

    @property
    def artifacts(self) -> _ArtifactFolder: ...


class MemoryVariables:
    """``ctx.variables`` on a plain dict, changed at once by the engine's own rules
    (``sys.set_variable``'s ops, the same errors): ``values`` holds them after the call.
    In a run, an attempt's changes are applied only when it completes."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def apply(self, name: str, op: VariableOp, value: Any) -> Any:
        new = apply_variable_op(self.values.get(name), op, value, name)
        self.values[name] = new
        return new


@contextlib.asynccontextmanager
async def step_context(
    *,
    execution_id: str | None = None,
    step_id: str = "step",
    attempt: int = 1,
    idempotency_key: str | None = None,
    loop: Mapping[str, int] | None = None,
    started_at: datetime | None = None,
    http: httpx.AsyncClient | None = None,
    variables: VariableAccess | Mapping[str, Any] | None = None,
    definition_input: Any = None,
    engine: OpenEngine | None = None,
    entities: EntityAccess | None = None,
    artifacts: ArtifactAccess | None = None,
    heartbeat_details: Any = None,
) -> AsyncIterator[StepContext]:
    """A ``StepContext`` as the engine gives a handler, for ``attempt`` of ``step_id``:
    its ``http`` a real client (``http=`` yours, an ``httpx.MockTransport`` one say;
    else one made here and closed after), its ``logger`` the ``flowledger.testing``
    logger, a fresh idempotency key unless given, and a fresh execution id (a UUID, as
    the engine's) unless given.

    ``variables``: a :class:`MemoryVariables` on the mapping given (empty by default), or
    your own ``VariableAccess``. ``engine``: an open ``Engine`` whose entity store and
    artifact folder ``ctx.entities`` and ``ctx.artifacts`` are, as in a run of this
    execution id (create the entity types first: ``engine.entities.create_type``; read
    saved files back with ``engine.artifacts.for_execution(ctx.execution_id)``).
    ``entities=``/``artifacts=`` give your own instead. Without either, using them raises
    a StepError that says so. ``heartbeat_details``: what an earlier attempt saved with
    ``ctx.heartbeat`` (a resume to test); the context's own ``heartbeat`` checks its
    details and keeps them nowhere."""
    execution_id = execution_id or str(uuid.uuid4())
    step_execution_id = str(uuid.uuid4())
    if engine is not None:
        # An Engine not open raises EngineClosedError on its parts, saying so.
        entities = entities or engine.entities.bind(execution_id, 0)
        artifacts = artifacts or engine.artifacts.bind(execution_id, step_execution_id, step_id)
    if variables is None or isinstance(variables, Mapping):
        variables = MemoryVariables(variables)
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(httpx.AsyncClient())
        yield StepContext(
            execution_id=execution_id,
            step_id=step_id,
            step_execution_id=step_execution_id,
            attempt=attempt,
            idempotency_key=idempotency_key or f"{execution_id}:{step_execution_id}",
            loop=dict(loop or {}),
            started_at=started_at or utcnow(),
            http=http,
            logger=logging.LoggerAdapter(logging.getLogger("flowledger.testing"), {}),
            variables=variables,
            definition_input=definition_input,
            entities=entities,
            artifacts=artifacts,
            heartbeat_details=heartbeat_details,
        )


class _Run(Protocol):
    """What a clock asks of an execution an engine runs (runtime.runner.ExecutionRunner)."""

    def quiet(self) -> bool: ...

    def next_timer(self) -> datetime | None: ...

    def poke(self) -> None: ...


class VirtualClock(Clock):
    """A clock for tests whose time moves ahead when told, as Temporal's time-skipping
    test environment's does. Give it to an engine, ``Engine("sqlite://", clock=clock)``:
    what waits on time there (a ``sys.delay``, a ``due``, a retry's back-off, a custom
    step's ``Suspend(until=...)``) is compared with it, and the times recorded (a step's
    ``startedAt``, ``resumedAt``, the events' ``at``) are read from it, so a two-day
    delay is recorded as two days. Leases keep the database's real time.

    :meth:`skip` moves to the next time a run here waits for, once they all wait;
    :meth:`skipping` does so whenever they do while it is open; :meth:`advance` moves by
    a duration (a person's ``due`` passing while nobody runs the execution: ``settle`` it
    after). It moves the executions that this engine runs (``run``, ``drive``,
    ``settle``, with their children).

    Limit: a ``Worker`` on such an engine does not follow it. A worker hands back an
    execution that waits with the (virtual) time it wakes and claims it again when the
    database's real time reaches that, so under a worker a two-day delay takes two real
    days. Test timers with ``run``, ``drive`` and ``settle``."""

    def __init__(self) -> None:
        super().__init__()
        #: How far it has been moved ahead of the real time.
        self.skipped = timedelta(0)
        self._runs: Callable[[], Sequence[_Run | None]] = list

    def now(self) -> datetime:
        return super().now() + self.skipped

    def bind(self, runners: Callable[[], Sequence[Any]]) -> None:
        self._runs = runners

    def advance(self, by: timedelta) -> datetime:
        """Move ``by`` ahead (the runs here look at their timers at once); the new time."""
        if by < timedelta(0):
            raise ValueError(f"a clock moves ahead only, not by {by}")
        self.skipped += by
        self._wake()
        return self.now()

    async def skip(self, *, wait: float = 30.0) -> datetime:
        """Once every execution this engine runs waits (no step running, none ready) and
        one waits for a time, move to the earliest such time and wake them; returns it.
        TimeoutError when that has not come within ``wait`` seconds of real time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (due := self._next_when_all_wait()) is None:
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"no execution here waited for a time within {wait:g}s: nothing to skip to"
                )
            await asyncio.sleep(_LOOK_EVERY)
        self._move_to(due)
        return due

    @contextlib.asynccontextmanager
    async def skipping(self) -> AsyncIterator[VirtualClock]:
        """While open, whenever every execution this engine runs waits for a time, the
        clock moves to the earliest: ``await engine.run(...)`` inside it does not wait
        through a delay, a due time or a back-off."""

        async def skip_for_ever() -> None:
            while True:
                due = self._next_when_all_wait()
                if due is not None:
                    self._move_to(due)
                await asyncio.sleep(_LOOK_EVERY)

        task = asyncio.create_task(skip_for_ever())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _next_when_all_wait(self) -> datetime | None:
        runs = self._runs()
        waiting = [run for run in runs if run is not None and run.quiet()]
        if not waiting or len(waiting) < len(runs):
            return None  # a step runs, or a run is starting: time is not what it waits for
        times = [when for run in waiting if (when := run.next_timer()) is not None]
        return min(times, default=None)

    def _move_to(self, when: datetime) -> None:
        ahead = when - self.now()
        if ahead > timedelta(0):
            self.skipped += ahead
        self._wake()

    def _wake(self) -> None:
        for run in self._runs():
            if run is not None:
                run.poke()

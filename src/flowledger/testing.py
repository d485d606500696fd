"""Helpers for testing your own step types: a real ``StepContext`` to call a handler with.

A step type made with ``@step_type`` is still its function, so a unit test calls it::

    async with step_context() as ctx:
        out = await send_email(SendEmailInput(to="ada@example.com"), ctx)

A step that writes entities or saves files gets an open ``Engine``'s (on ``sqlite://``,
an in-memory database): ``step_context(engine=engine)``. To run whole workflows in tests,
use such an ``Engine``: see the README's "Testing workflows".
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx

from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.steps.base import StepContext, VariableAccess, VariableOp
from flowledger.steps.builtins import apply_variable_op
from flowledger.steps.entity_access import EntityAccess
from flowledger.timeutil import utcnow


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
    a StepError that says so."""
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
        )

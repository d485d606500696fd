"""What a step sees: its template context (SPEC §3) and its handler's StepContext."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from functools import partial
from typing import Any

from flowledger.codec import Codec
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.logs import log_extra
from flowledger.runtime.attempts import AttemptVariables, pending_in
from flowledger.runtime.datastore import SecretsView, template_context
from flowledger.runtime.heartbeats import heartbeat_details
from flowledger.runtime.services import Services
from flowledger.runtime.state import Scope, StepExecution
from flowledger.runtime.steplogs import StepLogBuffer, StepLogger
from flowledger.runtime.variables import Variables
from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.steps.base import HeartbeatSaver, StepContext
from flowledger.steps.entity_access import EntityAccess

log = logging.getLogger("flowledger.runtime.runner")


class StepContexts:
    """Builds the contexts of one execution's steps from what the execution holds."""

    def __init__(
        self,
        services: Services,
        workflow: CompiledWorkflow,
        codec: Codec,
        *,
        trigger: dict[str, Any],
        context: dict[str, Any],
        info: dict[str, Any],
        variables: Variables,
        depth: int,
    ) -> None:
        self.services = services
        self.workflow = workflow
        self.trigger = trigger
        self.context = context
        self.info = info
        self.variables = variables
        self.depth = depth
        self.codec = codec
        self.secrets = SecretsView(codec)
        self._bound_entities: EntityAccess | None = None

    def template(self, scope: Scope) -> dict[str, Any]:
        return template_context(
            scope,
            self.workflow,
            trigger=self.trigger,
            variables=self.variables.values,
            context=self.context,
            execution=self.info,
            secrets=self.secrets,
            read_artifact=self.services.read_artifact,
        )

    def step(
        self, run: StepExecution, heartbeat: Callable[[], HeartbeatSaver] | None = None
    ) -> StepContext:
        assert run.started_at is not None
        execution_id: str = self.info["id"]
        # This attempt's changes reach the execution's variables when it completes; a
        # woken one's include those it made before it suspended.
        if run.suspended:
            changes = AttemptVariables(self.variables, pending_in(run.state))
        else:
            changes = AttemptVariables(self.variables)
        run.variable_changes = changes
        # Positional, in StepContext.__init__'s order (each named on its right): matching
        # seventeen keywords cost ~6.5k instructions a context (callgrind), and every
        # attempt of a step with a handler gets one. tests/runtime/test_contexts.py pins
        # each field.
        return StepContext(
            execution_id,  # execution_id
            run.step.id,  # step_id
            run.id,  # step_execution_id
            run.attempt,  # attempt
            run.idempotency_key,  # idempotency_key
            run.scope.loop_indexes,  # loop
            run.started_at,  # started_at
            self.services.http,  # http
            None,  # logger: made at its first use, by make_logger
            changes,  # variables
            run.step.spec.input,  # definition_input
            self.depth,  # depth
            self._entities(execution_id),  # entities
            None,  # artifacts: made at their first use, by make_artifacts
            self.services.clock.now,  # now
            heartbeat_details(run),  # heartbeat_details
            heartbeat,  # heartbeat
            # Made at the first use of ctx.logger or ctx.artifacts: most steps use neither.
            make_logger=partial(self._logger, execution_id, run),
            make_artifacts=self._make_artifacts(execution_id, run),
        )

    def logger(self, run: StepExecution) -> StepLogger:
        """The attempt's ``ctx.logger``: what it logs is kept with the attempt (its step
        logs) and goes to the process's log, both redacted."""
        return self._logger(str(self.info["id"]), run)

    def _logger(self, execution_id: str, run: StepExecution) -> StepLogger:
        extra = log_extra("run_step", execution_id, run.step.id, attempt=run.attempt)
        clock = self.services.clock
        level = self.services.step_log_level
        return StepLogger(
            log, extra, lambda: self._log_buffer(run), level, clock.now, self.codec.redact
        )

    def _log_buffer(self, run: StepExecution) -> StepLogBuffer:
        # Made at the attempt's first kept line. A suspended step's next context adds to
        # the same attempt's buffer and budget.
        if run.logs is None:
            run.logs = StepLogBuffer(self.services.step_log_limit)
        return run.logs

    def _entities(self, execution_id: str) -> EntityAccess | None:
        # One binding serves every step of the execution (it holds only the execution).
        if self._bound_entities is None:
            bind = self.services.entities_for
            self._bound_entities = bind(execution_id, self.depth) if bind else None
        return self._bound_entities

    def _make_artifacts(
        self, execution_id: str, run: StepExecution
    ) -> Callable[[], ArtifactAccess] | None:
        # None: the context's artifacts are Unavailable (no artifact store here).
        bind = self.services.artifacts_for
        if bind is None:
            return None
        return partial(RedactingArtifacts, bind, (execution_id, run.id, run.step.id), self.codec)


class RedactingArtifacts:
    """A step's artifacts with known secret values redacted from names and bytes (a
    saved response body that echoes a token): the codec's net, on files. Bound to the
    step on its first save (most steps save none)."""

    def __init__(
        self,
        bind: Callable[[str, str, str], ArtifactAccess],
        step: tuple[str, str, str],
        codec: Codec,
    ) -> None:
        self._bind = bind
        self._step = step
        self._inner: ArtifactAccess | None = None
        self._codec = codec

    async def save(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        return await self._access().save(
            self._codec.redact(name), self._codec.redact_bytes(data), content_type
        )

    async def save_stream(
        self,
        name: str,
        chunks: AsyncIterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        return await self._access().save_stream(
            self._codec.redact(name), self._codec.redact_chunks(chunks), content_type
        )

    def _access(self) -> ArtifactAccess:
        if self._inner is None:
            self._inner = self._bind(*self._step)
        return self._inner

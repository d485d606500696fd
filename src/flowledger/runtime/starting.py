"""Starting executions: checking what a start was given, and writing its first rows.

The Engine's ``start``, ``start_keyed``, ``start_document``, ``start_once`` and ``run``
all create here (runtime.creation decides what the rows hold); their contracts are in
the Engine's docstrings.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, cast

from flowledger.codec import Codec, loads, same_json
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.triggers import by_hand_trigger
from flowledger.errors import ConflictError
from flowledger.jsonvalues import check_json_value
from flowledger.runtime.creation import Lineage, execution_rows, plain_input, validate_input
from flowledger.runtime.documents import execution_document
from flowledger.storage import Row, Store, WorkflowVersion
from flowledger.timeutil import Clock
from flowledger.types import ExecutionDocument

#: A workflow as a start takes it: compiled, or a definition file to load.
Workflow = CompiledWorkflow | str | os.PathLike[str]


def _correlation(given: str | None) -> str:
    return f"correlation id {given!r}" if given is not None else "no correlation id"


class Starts:
    """The starts of one engine: ``load`` and ``register`` are its Engine.load and
    Engine.register, ``store`` and ``get_execution`` its own, ``owner`` and ``lease``
    what a start with ``hold`` leases the new execution to."""

    def __init__(
        self,
        *,
        load: Callable[[str | os.PathLike[str]], CompiledWorkflow],
        register: Callable[[CompiledWorkflow], Awaitable[WorkflowVersion]],
        store: Callable[[], Store],
        get_execution: Callable[[str], Awaitable[ExecutionDocument]],
        clock: Clock,
        owner: str,
        lease: timedelta,
    ) -> None:
        self._load = load
        self._register = register
        self._store = store
        self._get_execution = get_execution
        self._clock = clock
        self._owner = owner
        self._lease = lease

    async def once(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None,
        key: str,
        correlation_id: str | None,
        created_by: str,
    ) -> ExecutionDocument:
        """Engine.start_once."""
        check_json_value(key, "key")  # named as the caller named it, not as trigger_key
        compiled = workflow if isinstance(workflow, CompiledWorkflow) else self._load(workflow)
        lineage = Lineage(trigger_key=f"start:{compiled.name}:{key}")
        execution_id, row = await self.create(
            compiled, input, correlation_id=correlation_id, created_by=created_by, lineage=lineage
        )
        if execution_id == row["id"]:
            return cast(ExecutionDocument, execution_document(row, []))
        earlier = await self._get_execution(execution_id)
        if not same_json(
            earlier["trigger"].get("arguments"), loads(row["trigger"]).get("arguments")
        ):
            raise ConflictError(
                f"the idempotency key {key!r} started execution {execution_id} with another "
                "input; use a new key for a new start"
            )
        # Answering the first execution under another correlation id told the client it
        # was filed under the one it sent (tour 22C F3). An execution started without one
        # holds its own id.
        earlier_given = earlier["correlationId"]
        if earlier_given == execution_id:
            earlier_given = None
        if correlation_id != earlier_given:
            raise ConflictError(
                f"the idempotency key {key!r} started execution {execution_id} with "
                f"{_correlation(earlier_given)}, not {_correlation(correlation_id)}; "
                "use a new key for a new start"
            )
        return earlier

    async def create(
        self,
        workflow: Workflow,
        input: Mapping[str, Any] | None,
        *,
        correlation_id: str | None,
        created_by: str,
        trigger: Mapping[str, Any] | None = None,
        hold: bool = False,
        lineage: Lineage | None = None,
    ) -> tuple[str, Row]:
        """Engine.start, also returning the row it wrote (its id differs from the returned
        one when the trigger key was taken: then that row was not written)."""
        # Refused where they enter, naming the argument: a lone surrogate reached the
        # database, which refused the start as a StorageError (tour 23).
        check_json_value(correlation_id, "correlation_id")
        check_json_value(created_by, "created_by")
        if lineage is not None:
            check_json_value(lineage.trigger_key, "trigger_key")
        compiled = workflow if isinstance(workflow, CompiledWorkflow) else self._load(workflow)
        arguments = validate_input(compiled, plain_input(input))
        if hold:
            # This process runs it: when it cannot read the secrets the workflow names (an
            # unreadable FLOWLEDGER_SECRETS_FILE: ConfigError), refuse before storing
            # anything, rather than release a queued execution that some worker then runs
            # with its own secrets and fails with another reason.
            Codec.for_names(compiled.secret_names)
        version = await self._register(compiled)
        row, created = execution_rows(
            compiled,
            version,
            trigger=dict(trigger)
            if trigger
            else by_hand_trigger(compiled.triggers, "function", arguments, self._clock.now()),
            now=self._clock.now(),
            created_by=created_by,
            correlation_id=correlation_id,
            lineage=lineage or Lineage(),
            holder=(self._owner, self._lease) if hold else None,
        )
        return await self._store().create_execution(row, [created]), row

"""New execution rows: the one place that decides what a fresh execution looks like."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flowledger.codec import Codec
from flowledger.config import ConfigError
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import InputError
from flowledger.jsonvalues import NotJSONError, check_json_value, to_plain
from flowledger.runtime.ids import random_uuid
from flowledger.runtime.status import ExecutionStatus
from flowledger.runtime.tracing import with_traceparent
from flowledger.schema_check import check_against_schema, with_defaults
from flowledger.storage import Row, WorkflowVersion

EXECUTION_FORMAT_VERSION = 1
#: Sub-workflow nesting and entity-trigger chains stop at this many hops from a root cause.
MAX_DEPTH = 10


@dataclass(frozen=True)
class Lineage:
    """Where an execution comes from, beyond its trigger."""

    parent_id: str | None = None
    root_id: str | None = None
    depth: int = 0
    rerun_of: str | None = None
    job_run_id: str | None = None
    #: Makes the start happen once: a second start with the same key finds the first.
    trigger_key: str | None = None


def execution_rows(
    workflow: CompiledWorkflow,
    version: WorkflowVersion,
    *,
    trigger: Mapping[str, Any],
    now: datetime,
    created_by: str,
    correlation_id: str | None = None,
    lineage: Lineage = Lineage(),
    holder: tuple[str, timedelta] | None = None,
    variables: Mapping[str, Any] | None = None,
    execution_id: str | None = None,
    codec: Codec | None = None,
) -> tuple[Row, Row]:
    """The ``NotStarted`` row and its ``execution.created`` event.

    ``holder`` (owner, lease) creates it already leased, so no worker can claim it
    between its creation and the creator driving it.

    The trigger is stored redacted (a caller's input may hold a secret's value) by
    ``codec``, the writer's (a parent's, for its child), else by the secrets the
    workflow declares as this process reads them; a runner that reads the row reads
    the placeholders, as it reads variables. A held start is stored as it was sent:
    its creator runs it at once with the input as sent, and the first round stores
    the trigger redacted (ExecutionRunner), as it does when this process could not
    read the secrets.
    """
    # Random (version 4), not time-ordered like step ids: people tell executions apart by
    # the first characters of their ids (the web UI shows eight, the CLI takes prefixes),
    # and a version 7 id's first eight are the same for a minute. Ordered ids would put a
    # start's index writes at the right edge (its bare SQL 118 -> 74 us on SQLite with
    # 5,000 executions; W3 15% faster); that is the price of readable ids.
    execution_id = execution_id or random_uuid()
    if codec is None:
        codec = Codec() if holder else _redacting(workflow)
    row: Row = {
        "id": execution_id,
        "correlation_id": correlation_id or execution_id,
        "parent_id": lineage.parent_id,
        "root_id": lineage.root_id,
        "workflow_version_id": version.id,
        "workflow_name": workflow.name,
        "workflow_version": version.version,
        "runtime_status": str(ExecutionStatus.NOT_STARTED),
        "current_state_name": None,
        "created_at": now,
        "started_at": None,
        "completed_at": None,
        "failed_at": None,
        "last_activity_at": now,
        "created_by": created_by,
        "context": codec.dumps(with_traceparent(workflow.spec.context)),
        "trigger": codec.dumps(dict(trigger)),
        "variables": codec.dumps(
            dict(variables) if variables is not None else workflow.spec.variables
        ),
        "output": None,
        "error": None,
        "event_seq": 1,
        "lease_epoch": 1 if holder else 0,
        "lease_owner": holder[0] if holder else None,
        "lease_expires_at": now + holder[1] if holder else None,
        "wake_at": None,
        "format_version": EXECUTION_FORMAT_VERSION,
        "depth": lineage.depth,
        "rerun_of": lineage.rerun_of,
        "job_run_id": lineage.job_run_id,
        "trigger_key": lineage.trigger_key,
        "signals_sent": 0,
        "signals_taken": 0,
        "descendants": 0,
    }
    detail: dict[str, Any] = {"workflow": workflow.name, "version": version.version}
    if lineage.parent_id:
        detail["parentWorkflowExecutionId"] = lineage.parent_id
    if lineage.rerun_of:
        detail["rerunOf"] = lineage.rerun_of
    created = {
        "execution_id": execution_id,
        "seq": 1,
        "at": now,
        "kind": "execution.created",
        "step_execution_id": None,
        "step_id": None,
        "attempt": None,
        "status": str(ExecutionStatus.NOT_STARTED),
        "detail": codec.dumps(detail),
    }
    return row, created


def _redacting(workflow: CompiledWorkflow) -> Codec:
    """A codec of the secrets ``workflow`` declares, or none when this process cannot
    read them (a start still queues it, for a worker that can: see
    runtime.starting.Starts.create)."""
    if not workflow.secret_names:
        return Codec()
    try:
        return Codec.for_names(workflow.secret_names)
    except ConfigError:
        return Codec()


def plain_input(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """A start's input as JSON data (a datetime as ISO text, a set as a list), or
    InputError naming what JSON cannot hold: a lone surrogate, NaN, an object."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        kind = type(given).__name__
        raise InputError(f"the input must be a JSON object (a dict), not a {kind}")
    if type(given) is not dict:
        given = dict(given)
    try:
        arguments: dict[str, Any] = to_plain(given, "input")
    except NotJSONError as exc:
        raise InputError(str(exc)) from None
    check_json_value(arguments, "input")
    return arguments


def validate_input(workflow: CompiledWorkflow, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The input as the execution keeps it: the ``default`` of each property of
    ``input_schema`` it lacks filled in, then checked against the schema."""
    schema = workflow.spec.input_schema
    if schema is None:
        return dict(arguments)
    filled: dict[str, Any] = with_defaults(schema, dict(arguments))
    validator = workflow.input_validator
    assert validator is not None  # built from the schema
    check_against_schema(
        validator, filled, "input", f"the input does not match {workflow.name}'s input_schema"
    )
    return filled

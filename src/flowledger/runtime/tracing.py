"""Where an execution keeps the trace it joined (see ``flowledger.traceparent``).

An execution created while ``TRACEPARENT`` is set keeps that value in its context
document under :data:`CONTEXT_KEY` (one code path: ``execution_rows``, for every kind of
start): it joins the caller's trace. The key starts with ``_``: no workflow's own
context uses it (decided: a column would need a migration in ``storage/``, and the
context document is already carried with the execution everywhere).
"""

from __future__ import annotations

from typing import Any

from flowledger.codec import loads
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.runtime.observer import ExecutionInfo
from flowledger.traceparent import TRACEPARENT
from flowledger.types import Row

CONTEXT_KEY = "_traceparent"


def with_traceparent(context: Any) -> Any:
    """The context document of a new execution: with the current traceparent, if any."""
    current = TRACEPARENT.get()
    if current is None or not isinstance(context, dict):
        return context
    return {**context, CONTEXT_KEY: current}


def joined_traceparent(row: Row) -> str | None:
    """The traceparent an execution row joined when it was created."""
    text = row.get("context")
    if not text or CONTEXT_KEY not in text:
        return None
    context = loads(text)
    value = context.get(CONTEXT_KEY) if isinstance(context, dict) else None
    return value if isinstance(value, str) else None


def execution_info(workflow: CompiledWorkflow, row: Row) -> ExecutionInfo:
    types = {step_id: step.type_name for step_id, step in workflow.steps.items()}
    return ExecutionInfo(workflow.name, types, joined_traceparent(row))

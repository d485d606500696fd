"""Trace context of executions, without OpenTelemetry (the SDK lives in the faces).

An execution started while :data:`TRACEPARENT` holds a W3C ``traceparent`` (an HTTP
request that carried one, with ``FLOWLEDGER_OTEL=1``; a parent execution's round)
keeps it in its context document under :data:`CONTEXT_KEY`: it joins that trace. The
runner of an execution sets :data:`TRACEPARENT` to the execution's own span while it
runs when tracing is on, so its sub-workflow children and its ``sys.http_request``
calls carry it on. With tracing off nothing sets it, and reading it costs one
``ContextVar.get``.

Span and trace ids are derived from the execution's ids (:func:`span_id`), so the
spans written after the fact (api.tracing, from the observer) and the ``traceparent``
headers sent while the execution runs agree without any shared state.
"""

from __future__ import annotations

import hashlib
import re
from contextvars import ContextVar
from typing import Any

from flowledger.codec import loads
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.runtime.observer import ExecutionInfo
from flowledger.types import Row

#: The trace context that new executions and outgoing requests join (W3C traceparent).
TRACEPARENT: ContextVar[str | None] = ContextVar("flowledger_traceparent", default=None)
#: Where an execution's context document keeps the traceparent it joined.
CONTEXT_KEY = "_traceparent"

_VALID = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parse(traceparent: str | None) -> tuple[int, int] | None:
    """(trace id, parent span id) of a valid ``traceparent``, else None."""
    match = _VALID.fullmatch((traceparent or "").strip().lower())
    if match is None or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return int(match.group(1), 16), int(match.group(2), 16)


def span_id(key: str) -> int:
    """A stable non-zero 64-bit span id for ``key`` (an execution or step attempt)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") or 1


def trace_id(execution_id: str, traceparent: str | None) -> int:
    """The trace of an execution: the one it joined, else one of its own."""
    joined = parse(traceparent)
    if joined is not None:
        return joined[0]
    return int.from_bytes(hashlib.sha256(b"trace:" + execution_id.encode()).digest()[:16], "big")


def attempt_key(step_execution_id: str, attempt: int) -> str:
    return f"{step_execution_id}#{attempt}"


def format_traceparent(trace: int, span: int) -> str:
    return f"00-{trace:032x}-{span:016x}-01"


def own_traceparent(execution_id: str, joined: str | None) -> str:
    """The traceparent naming the execution's own span (what its children join)."""
    return format_traceparent(trace_id(execution_id, joined), span_id(execution_id))


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

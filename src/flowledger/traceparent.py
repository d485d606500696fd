"""W3C trace context for executions, without OpenTelemetry (its SDK lives in the faces).

:data:`TRACEPARENT` holds the ``traceparent`` that what starts now joins: the HTTP face
sets it from an incoming request's header (``FLOWLEDGER_OTEL=1``), and the engine sets
it to an execution's own span while that execution runs (tracing on), so its
sub-workflow children and its ``sys.http_request`` calls carry the trace on. With
tracing off nothing sets it, and reading it costs one ``ContextVar.get``.

Span ids are derived from ids (:func:`span_id`): the spans written after the fact from
the engine's observer (``api.tracing``) and the headers sent while the execution runs
agree without any shared state.
"""

from __future__ import annotations

import hashlib
import re
from contextvars import ContextVar

#: The trace context that new executions and outgoing requests join.
TRACEPARENT: ContextVar[str | None] = ContextVar("flowledger_traceparent", default=None)

_VALID = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parse(traceparent: str | None) -> tuple[int, int] | None:
    """(trace id, parent span id) of a valid version-00 ``traceparent``, else None."""
    match = _VALID.fullmatch((traceparent or "").strip().lower())
    if match is None or int(match.group(1), 16) == 0 or int(match.group(2), 16) == 0:
        return None
    return int(match.group(1), 16), int(match.group(2), 16)


def span_id(key: str) -> int:
    """A stable non-zero 64-bit span id for ``key`` (an execution id, :func:`attempt_key`)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") or 1


def attempt_key(step_execution_id: str, attempt: int) -> str:
    return f"{step_execution_id}#{attempt}"


def trace_id(execution_id: str, joined: str | None) -> int:
    """The trace of an execution: the one it joined, else one of its own."""
    parsed = parse(joined)
    if parsed is not None:
        return parsed[0]
    digest = hashlib.sha256(b"trace:" + execution_id.encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1


def format_traceparent(trace: int, span: int) -> str:
    return f"00-{trace:032x}-{span:016x}-01"


def own_traceparent(execution_id: str, joined: str | None) -> str:
    """The traceparent naming an execution's own span (what its children join)."""
    return format_traceparent(trace_id(execution_id, joined), span_id(execution_id))


def step_traceparent(step_execution_id: str, attempt: int) -> str | None:
    """The ``traceparent`` header a step attempt sends (its span as the parent); None
    when tracing is off."""
    current = parse(TRACEPARENT.get())
    if current is None:
        return None
    return format_traceparent(current[0], span_id(attempt_key(step_execution_id, attempt)))

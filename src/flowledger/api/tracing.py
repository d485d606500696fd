"""OpenTelemetry traces (``FLOWLEDGER_OTEL=1``; the ``otel`` extra), imported lazily.

- **Spans, after the fact, from the engine's observer** (:class:`SpanWriter`): one per
  step attempt (start = its finish minus its duration, both from the events' times) and
  one per execution (from the first start this process saw, else its end, to its end).
  Ids are derived (``flowledger.traceparent``): an execution's span id from its id, an
  attempt's from its step execution id and attempt number; the trace is the one the
  execution joined, else one of its own. So a sub-workflow's execution span is a child
  of its parent's execution span, and an outgoing ``sys.http_request`` names its step
  attempt's span as the parent, with no state shared between them.
- **Incoming** (:class:`TraceContext`): a valid ``traceparent`` header on any request
  (API or ``/hooks``) is what executions started by that request join.

Spans are handed to a span processor: a ``BatchSpanProcessor`` over the OTLP/HTTP
exporter (configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables) unless the
caller gives one (tests: a ``SimpleSpanProcessor`` over an ``InMemorySpanExporter``).
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from flowledger import __version__
from flowledger.runtime.engine import Engine
from flowledger.runtime.observer import (
    BaseObserver,
    CommittedEvents,
    ExecutionFinished,
    StepAttempt,
)
from flowledger.traceparent import TRACEPARENT, attempt_key, parse, span_id, trace_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

INSTALL = "pip install 'flowledger[otel]'"
#: Executions whose start this process saw, remembered until their end (bounded).
MAX_OPEN = 10_000
#: Seconds a stopping process gives the spans still batched to reach the collector. The
#: exporter retries a collector that does not answer for up to its timeout (10 s): a
#: `flowledger run` with no collector took 12 s to exit.
EXIT_FLUSH = 3.0
#: The exporter behind each processor ``otlp_processor`` made (to cut its retries short).
_EXPORTERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class TracingUnavailable(RuntimeError):
    """FLOWLEDGER_OTEL=1 but the OpenTelemetry SDK or exporter is not installed."""


def otlp_processor() -> SpanProcessor:
    """The default: batches of spans to the OTLP/HTTP exporter."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            f"FLOWLEDGER_OTEL=1 needs the OpenTelemetry SDK and OTLP exporter ({exc.name} is "
            f"missing): {INSTALL}"
        ) from None

    class Exporter(OTLPSpanExporter):
        """Shut down once, quietly: ``stop_spans`` may have done it before the processor."""

        _stopped = False

        def shutdown(self) -> None:
            if not self._stopped:
                self._stopped = True
                super().shutdown()  # type: ignore[no-untyped-call]

    exporter = Exporter()
    processor = BatchSpanProcessor(exporter)
    _EXPORTERS[processor] = exporter
    return processor


def stop_spans(processor: SpanProcessor, within: float = EXIT_FLUSH) -> None:
    """Flush the spans still batched and shut ``processor`` down, giving a collector that
    does not answer ``within`` seconds: then the exporter stops retrying (those spans are
    lost, as the exporter's own log says) and the process exits."""
    exporter = _EXPORTERS.get(processor)
    timer = None if exporter is None else threading.Timer(within, exporter.shutdown)
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        processor.shutdown()
    finally:
        if timer is not None:
            timer.cancel()


def trace_engine(engine: Engine, processor: SpanProcessor | None = None) -> SpanProcessor:
    """Write spans of what ``engine`` runs to ``processor`` (default: OTLP); returns it,
    to be shut down (flushed) when the process stops. ``serve`` and ``worker`` both."""
    processor = processor or otlp_processor()
    engine.add_observer(SpanWriter(processor))
    return processor


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SpanWriter(BaseObserver):
    """Writes execution and step-attempt spans from what the engine reports."""

    def __init__(self, processor: SpanProcessor) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.processor = processor
        self._resource = Resource.create({"service.name": "flowledger"})
        self._scope = InstrumentationScope("flowledger", __version__)
        self._began: dict[str, datetime] = {}

    def events_committed(self, batch: CommittedEvents) -> None:
        if batch.execution_id not in self._began and batch.events:
            self._began[batch.execution_id] = _at(batch.events[0]["at"])
            while len(self._began) > MAX_OPEN:
                del self._began[next(iter(self._began))]

    def step_attempt_finished(self, attempt: StepAttempt) -> None:
        trace = trace_id(attempt.execution_id, attempt.info.traceparent)
        end = _ns(attempt.at)
        start = end - int((attempt.duration or 0.0) * 1_000_000_000)
        attributes: dict[str, Any] = {
            "flowledger.execution_id": attempt.execution_id,
            "flowledger.step_id": attempt.step_id,
            "flowledger.step_type": attempt.step_type,
            "flowledger.attempt": attempt.attempt,
            "flowledger.status": attempt.status,
        }
        if attempt.error:
            attributes["flowledger.error"] = attempt.error
        self._write(
            f"step {attempt.step_id}",
            trace,
            span_id(attempt_key(attempt.step_execution_id, attempt.attempt)),
            span_id(attempt.execution_id),
            start,
            end,
            attributes,
            failed=attempt.status == "Failed",
        )

    def execution_finished(self, finished: ExecutionFinished) -> None:
        joined = parse(finished.info.traceparent)
        began = self._began.pop(finished.execution_id, finished.at)
        self._write(
            f"execution {finished.info.workflow}",
            trace_id(finished.execution_id, finished.info.traceparent),
            span_id(finished.execution_id),
            joined[1] if joined is not None else None,
            _ns(began),
            _ns(finished.at),
            {
                "flowledger.execution_id": finished.execution_id,
                "flowledger.workflow": finished.info.workflow,
                "flowledger.status": finished.status,
            },
            failed=finished.status == "Failed",
            remote_parent=True,
        )

    def _write(
        self,
        name: str,
        trace: int,
        span: int,
        parent: int | None,
        start: int,
        end: int,
        attributes: dict[str, Any],
        *,
        failed: bool,
        remote_parent: bool = False,
    ) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode

        flags = TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(trace, span, is_remote=False, trace_flags=flags)
        parent_context = (
            SpanContext(trace, parent, is_remote=remote_parent, trace_flags=flags)
            if parent is not None
            else None
        )
        self.processor.on_end(
            ReadableSpan(
                name,
                context=context,
                parent=parent_context,
                resource=self._resource,
                attributes=attributes,
                instrumentation_scope=self._scope,
                status=Status(StatusCode.ERROR if failed else StatusCode.UNSET),
                start_time=start,
                end_time=max(end, start),
            )
        )


class TraceContext:
    """ASGI middleware: a request's valid ``traceparent`` is what it starts joins."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = None
        if scope["type"] == "http":
            for name, value in scope.get("headers") or []:
                if name == b"traceparent":
                    header = value.decode("latin-1")
                    break
        if header is None or parse(header) is None:
            await self.app(scope, receive, send)
            return
        token = TRACEPARENT.set(header.strip().lower())
        try:
            await self.app(scope, receive, send)
        finally:
            TRACEPARENT.reset(token)

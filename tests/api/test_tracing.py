"""OpenTelemetry traces in-process, with the SDK's in-memory exporter (no network): an
execution started over HTTP with a ``traceparent`` joins that trace; its spans (the
execution, each step attempt) come from the engine's observer; a sub-workflow child
and a ``sys.http_request`` call carry the trace on."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowledger.api import ApiSettings, create_api
from flowledger.api.tracing import TracingUnavailable, otlp_processor
from flowledger.app import App, CreateToken, PushWorkflows, WorkflowText
from flowledger.config import Settings
from flowledger.egress import EgressPolicy
from flowledger.traceparent import TRACEPARENT, attempt_key, span_id
from tests.worker.receiver import receiver

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"
CHILD = """
name: traced-child
steps:
  - id: call
    type: sys.http_request
    input: {{method: POST, url: "{url}", json: {{hello: 1}}}}
"""
PARENT = """
name: traced-parent
steps:
  - {id: first, type: sys.transform, input: {value: 1}}
  - {id: kid, type: sys.sub_workflow, after: [first], input: {workflow: traced-child}}
"""


async def test_a_traced_start_joins_the_callers_trace(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    settings = Settings(otel=True, http_allow=EgressPolicy.parse("127.0.0.1"))
    with receiver() as hook:
        async with App(f"sqlite:///{tmp_path / 't.db'}", settings=settings) as app:
            texts = [WorkflowText(text=CHILD.format(url=hook.url)), WorkflowText(text=PARENT)]
            await app.workflows.push(PushWorkflows(texts=texts))
            token = (await app.tokens.create(CreateToken(name="t", role="admin")))["token"]
            api = create_api(
                app, ApiSettings(otel=True, span_processor=SimpleSpanProcessor(exporter))
            )
            headers = {
                "Authorization": f"Bearer {token}",
                "traceparent": f"00-{TRACE}-{CALLER}-01",
            }
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                answer = await http.post(
                    "/api/v1/workflows/traced-parent/executions", json={}, headers=headers
                )
            assert answer.status_code == 201, answer.text
            assert TRACEPARENT.get() is None  # the request's context did not leak
            parent_id = answer.json()["id"]
            done = await app.engine.drive(parent_id)
            assert done["runtimeStatus"] == "Completed", done.get("error")
            steps = await app.engine.store.get_step_executions(parent_id)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) >= {
        "execution traced-parent", "step first", "step kid", "execution traced-child", "step call"
    }  # fmt: skip
    assert {f"{span.context.trace_id:032x}" for span in spans.values()} == {TRACE}
    parent = spans["execution traced-parent"]
    assert parent.parent is not None and f"{parent.parent.span_id:016x}" == CALLER
    assert parent.context.span_id == span_id(parent_id)
    assert spans["step first"].parent.span_id == parent.context.span_id  # type: ignore[union-attr]
    child = spans["execution traced-child"]
    assert child.parent.span_id == parent.context.span_id  # type: ignore[union-attr]
    assert spans["step call"].parent.span_id == child.context.span_id  # type: ignore[union-attr]
    assert parent.end_time >= parent.start_time  # type: ignore[operator]
    assert spans["step first"].attributes["flowledger.step_type"] == "sys.transform"  # type: ignore[index]
    # the HTTP call named its step attempt's span as its parent
    sent = hook.requests[0].headers["traceparent"]
    call = spans["step call"]
    assert sent == f"00-{TRACE}-{call.context.span_id:016x}-01"
    assert steps  # the parent's steps were stored
    first = next(s for s in steps if s["step_id"] == "first")
    assert spans["step first"].context.span_id == span_id(attempt_key(first["id"], 1))


async def test_without_otel_nothing_is_traced(tmp_path: Path) -> None:
    with receiver() as hook:
        settings = Settings(http_allow=EgressPolicy.parse("127.0.0.1"))
        async with App(f"sqlite:///{tmp_path / 'n.db'}", settings=settings) as app:
            await app.workflows.push(
                PushWorkflows(texts=[WorkflowText(text=CHILD.format(url=hook.url))])
            )
            execution_id = await app.engine.start(await app.workflows.find("traced-child"))
            done = await app.engine.drive(execution_id)
            assert done["runtimeStatus"] == "Completed", done.get("error")
    assert "traceparent" not in {k.lower() for k in hook.requests[0].headers}


def test_without_the_packages_serve_says_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(TracingUnavailable, match=r"pip install 'flowledger\[otel\]'"):
        otlp_processor()


def test_a_stopping_process_gives_a_collector_that_does_not_answer_a_bounded_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no collector, the exporter retried the spans still batched for its whole
    timeout (10 s) after a `flowledger run` had finished: stop_spans cuts it short. A
    collector answering 503 (retryable) counts the tries: the bounded flush makes one,
    the unbounded one tried again after its first backoff (1 s) and on. Counted, not
    timed: the exporter's log said the same "timeout, max retries or shutdown" either
    way when the shutdown met its first try on a loaded machine."""
    from opentelemetry.sdk.trace import TracerProvider

    from flowledger.api.tracing import stop_spans

    with receiver() as collector:
        collector.down = True  # 503: the exporter backs off and tries again
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.url}/v1/traces")
        processor = otlp_processor()
        provider = TracerProvider()
        provider.add_span_processor(processor)
        with provider.get_tracer("test").start_as_current_span("one"):
            pass
        stop_spans(processor, within=0.2)  # well before the exporter's first backoff ends
        # One try, or none when the shutdown came first ("already shutdown, ignoring
        # batch", on a very loaded machine); unbounded, it made four (1, 2, 4 s backoffs).
        assert collector.refused <= 1

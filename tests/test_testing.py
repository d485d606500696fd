"""flowledger.testing, and step types that stay callable as the functions they were
made from: a unit test of a handler with its own types (it had to dig out
``step.handler``, typed ``Handler | None``, and build a StepContext of nine fields)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from flowledger import (
    Engine,
    EngineClosedError,
    StepContext,
    StepError,
    StepRegistry,
    step_type,
)
from flowledger.testing import VirtualClock, step_context


class Order(BaseModel):
    sku: str
    quantity: int = 1


class Quote(BaseModel):
    sku: str
    total: int
    key: str
    status: int


@step_type("shop.quote")
async def quote(data: Order, ctx: StepContext) -> Quote:
    answer = await ctx.http.get("https://prices.example/" + data.sku)
    total = answer.json()["price"] * data.quantity
    return Quote(sku=data.sku, total=total, key=ctx.idempotency_key, status=answer.status_code)


@step_type("shop.double")
def double(data: Order, ctx: StepContext) -> Quote:
    return Quote(sku=data.sku, total=2 * data.quantity, key=ctx.idempotency_key, status=0)


async def test_a_step_type_is_called_as_its_function_with_a_test_context() -> None:
    prices = httpx.MockTransport(lambda request: httpx.Response(200, json={"price": 7}))
    async with (
        httpx.AsyncClient(transport=prices) as http,
        step_context(http=http, attempt=2, idempotency_key="k-1") as ctx,
    ):
        got = await quote(Order(sku="tea", quantity=3), ctx)
        assert got == Quote(sku="tea", total=21, key="k-1", status=200)
        assert ctx.attempt == 2
    async with step_context() as ctx:
        plain = double(Order(sku="tea", quantity=4), ctx)
        assert plain.total == 8 and plain.key  # a fresh idempotency key
    registry = StepRegistry.with_builtins()
    registry.register(quote)  # still the step type the registry takes
    assert registry.get("shop.quote") is quote


async def test_a_plugin_step_suspends_and_is_resumed_with_its_state() -> None:
    """``Suspend`` is public, but ``step_type`` had no ``resume=``: a plugin's handler was
    called again on waking with nothing to tell it so, and suspending again parked it
    for ever."""
    from datetime import timedelta

    from flowledger import Suspend
    from flowledger.timeutil import utcnow

    async def finish(data: Order, ctx: StepContext, state: Mapping[str, Any]) -> Quote:
        return Quote(sku=data.sku, total=state["asked"], key=ctx.idempotency_key, status=1)

    @step_type("shop.later", resume=finish)
    async def later(data: Order, ctx: StepContext) -> Suspend:
        return Suspend(until=utcnow() + timedelta(milliseconds=50), state={"asked": 5})

    registry = StepRegistry.with_builtins()
    registry.register(later)
    async with Engine("sqlite://", registry=registry) as engine:
        text = "name: w\nsteps: [{id: l, type: shop.later, input: {sku: tea}}]\n"
        doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    [step] = doc["steps"].values()
    assert step["outputData"]["total"] == 5


class LeadInput(BaseModel):
    email: str


class Saved(BaseModel):
    entity_id: str
    report: str


@step_type("shop.save_lead")
async def save_lead(data: LeadInput, ctx: StepContext) -> Saved:
    # No ``assert ctx.entities is not None``: the fields are typed as always there.
    change = await ctx.entities.create(
        "Lead", {"email": data.email}, idempotency_key=ctx.idempotency_key
    )
    report = await ctx.artifacts.save("lead.txt", data.email.encode(), "text/plain")
    ctx.variables.apply("saved", "increment", 1)
    return Saved(entity_id=change.entity["id"], report=report["id"])


async def test_a_step_that_writes_entities_and_files_is_tested_on_an_engine_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``step_context`` had no ``entities=``/``artifacts=``, and ``ctx.variables`` was
    None unless the test wrote its own (tour 23 F7)."""
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS", str(tmp_path))  # not next to the repository
    from flowledger import Engine

    async with Engine("sqlite://") as engine:
        await engine.entities.create_type("Lead", {"type": "object"})
        async with step_context(engine=engine, variables={"saved": 1}) as ctx:
            out = await save_lead(LeadInput(email="ada@example.com"), ctx)
        assert ctx.variables.get("saved") == 2
        page = await engine.entities.list("Lead")
        assert [e["id"] for e in page.entities] == [out.entity_id]
        [report] = await engine.artifacts.for_execution(ctx.execution_id)
        assert (report["id"], report["stepId"]) == (out.report, "step")
        assert await engine.artifacts.read(report) == b"ada@example.com"


async def test_without_an_engine_using_entities_or_artifacts_says_what_to_pass() -> None:
    """``ctx.entities`` was None: a handler needed an assert under ``mypy --strict``, and
    its test an ``AttributeError`` on NoneType (tour 23 F13)."""
    async with step_context() as ctx:
        with pytest.raises(StepError) as refused:
            await save_lead(LeadInput(email="ada@example.com"), ctx)
        assert refused.value.message == (
            "ctx.entities is not available: this StepContext was made without it (in a "
            "test, pass step_context(engine=...) an open Engine, or entities=)"
        )
        assert not refused.value.retryable
        assert ctx.variables.get("saved") is None  # a MemoryVariables, empty
    with pytest.raises(EngineClosedError, match="the engine is not open"):
        async with step_context(engine=Engine("sqlite://")):
            pass


# -- a virtual clock: workflows that wait days run in a test at once -----------------------

NAP = """
name: nap
steps:
  - {id: nap, type: sys.delay, input: {duration: 2d}}
  - {id: after, type: sys.transform, input: {value: done}}
output: "{{ steps.after.output }}"
"""


def _by_step(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["stepId"]: step for step in doc["steps"].values()}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_two_day_delay_passes_at_once_and_is_recorded_as_two_days() -> None:
    clock = VirtualClock()
    async with Engine("sqlite://", clock=clock) as engine:
        async with clock.skipping():
            doc = await asyncio.wait_for(engine.run(engine.load_text(NAP)), 60)
        events = await engine.events(doc["id"])
    assert (doc["runtimeStatus"], doc["output"]) == ("Completed", "done")
    nap = _by_step(doc)["nap"]
    began, resumed = _at(nap["startedAt"]), _at(nap["outputData"]["resumedAt"])
    assert resumed - began >= timedelta(days=2)
    assert _at(nap["completedAt"]) - began >= timedelta(days=2)
    assert _at(doc["completedAt"]) - _at(doc["startedAt"]) >= timedelta(days=2)
    [resumed_event] = [e for e in events if e["kind"] == "step.resumed"]
    assert _at(resumed_event["at"]) - began >= timedelta(days=2)
    assert clock.skipped >= timedelta(days=2) - timedelta(seconds=5)


async def test_skip_moves_to_the_time_a_waiting_run_waits_for() -> None:
    clock = VirtualClock()
    async with Engine("sqlite://", clock=clock) as engine:
        running = asyncio.create_task(engine.run(engine.load_text(NAP)))
        moved_to = await clock.skip()
        doc = await asyncio.wait_for(running, 60)
        wake = _at(_by_step(doc)["nap"]["startedAt"]) + timedelta(days=2)
        assert abs(moved_to - wake) < timedelta(milliseconds=1)  # the record keeps ms only
        assert doc["runtimeStatus"] == "Completed"
        with pytest.raises(TimeoutError, match="no execution here waited for a time"):
            await clock.skip(wait=0.05)  # nothing runs now
        with pytest.raises(ValueError, match="moves ahead only"):
            clock.advance(timedelta(seconds=-1))


async def test_a_retry_back_off_of_an_hour_passes_at_once() -> None:
    calls: list[datetime] = []

    @step_type("shop.flaky")
    async def flaky(data: Order, ctx: StepContext) -> Quote:
        calls.append(ctx.now())
        if ctx.attempt == 1:
            raise StepError("try again later")
        return Quote(sku=data.sku, total=1, key=ctx.idempotency_key, status=0)

    text = """
    name: flaky
    steps:
      - id: buy
        type: shop.flaky
        input: {sku: tea}
        retry: {max_attempts: 2, backoff: fixed, initial_delay: 1h, max_delay: 2h, jitter: false}
    """
    registry = StepRegistry.with_builtins()
    registry.register(flaky)
    clock = VirtualClock()
    async with Engine("sqlite://", registry=registry, clock=clock) as engine, clock.skipping():
        doc = await asyncio.wait_for(engine.run(engine.load_text(text)), 60)
    assert doc["runtimeStatus"] == "Completed"
    assert len(calls) == 2 and calls[1] - calls[0] >= timedelta(hours=1)


async def test_a_person_s_due_passes_when_advanced_and_settled() -> None:
    text = """
    name: ask
    steps:
      - id: ask
        type: sys.wait_for_input
        due: 3d
        input: {prompt: "Go?", on_timeout: {default: {go: false}}}
    """
    clock = VirtualClock()
    async with Engine("sqlite://", clock=clock) as engine:
        doc = await engine.run(engine.load_text(text))
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        clock.advance(timedelta(days=1))
        still = await engine.settle(doc["id"])
        assert still["runtimeStatus"] == "AwaitingUserInput"  # a day in: not due yet
        clock.advance(timedelta(days=2))
        done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed"
    ask = _by_step(done)["ask"]
    assert ask["outputData"] == {"go": False}
    assert _at(ask["completedAt"]) >= _at(ask["dueAt"])

"""A step's ``heartbeat_timeout``: an attempt whose handler goes that long without a
``ctx.heartbeat`` is ended with code ``timeout.heartbeat`` and retried under its
``retry``, resuming from the last details it saved (tour 25 M11: a hung step was found
only by its whole ``timeout``). On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type
from tests.conftest import RunYaml
from tests.runtime.support import latest


class Pages(BaseModel):
    pages: int = 3
    #: Seconds between two pages (each page is one heartbeat).
    gap: float = 0.02
    #: The attempt that hangs after its pages (0: none).
    hang_on: int = 0


#: Set by a test to let a hung plain ``def`` handler's thread end.
RELEASE = threading.Event()


@step_type("hb.pages")
async def pages(data: Pages, ctx: StepContext) -> dict[str, Any]:
    start = (ctx.heartbeat_details or {}).get("page", 0)
    for page in range(start, data.pages):
        await asyncio.sleep(data.gap)
        ctx.heartbeat({"page": page + 1})
    if ctx.attempt == data.hang_on:
        await asyncio.Event().wait()  # hangs: only the watch ends it
    return {"resumedFrom": start, "attempt": ctx.attempt}


@step_type("hb.blocking_pages")
def blocking_pages(data: Pages, ctx: StepContext) -> dict[str, Any]:
    start = (ctx.heartbeat_details or {}).get("page", 0)
    for page in range(start, data.pages):
        time.sleep(data.gap)
        ctx.heartbeat({"page": page + 1})
    if ctx.attempt == data.hang_on:
        RELEASE.wait(30)  # a blocking call that hangs; the test lets the thread end
    return {"resumedFrom": start, "attempt": ctx.attempt}


@step_type("hb.own_timeout")
async def own_timeout(data: Pages, ctx: StepContext) -> dict[str, Any]:
    async with asyncio.timeout(0.01):
        await asyncio.sleep(5)
    return {}


@pytest.fixture
def registry() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    for step in (pages, blocking_pages, own_timeout):
        registry.register(step)
    return registry


async def _failures(engine: Engine, execution_id: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in await engine.events(execution_id) if e["kind"] == "step.failed"]


@pytest.mark.parametrize("kind", ["hb.pages", "hb.blocking_pages"])
async def test_a_handler_that_stops_beating_is_ended_and_its_retry_resumes_from_the_last_beat(
    engine: Engine, run_yaml: RunYaml, kind: str
) -> None:
    RELEASE.clear()
    try:
        doc = await run_yaml(
            f"""
            name: hung
            steps:
              - id: export
                type: {kind}
                heartbeat_timeout: 300ms
                retry: {{max_attempts: 2, initial_delay: 10ms, codes: [timeout]}}
                input: {{pages: 3, hang_on: 1}}
            output: "{{{{ steps.export.output }}}}"
            """
        )
    finally:
        RELEASE.set()
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    # The third page's heartbeat came within the throttle's second: flushed as the
    # attempt ended, so the retry resumes after it, not after the first.
    assert doc["output"] == {"resumedFrom": 3, "attempt": 2}
    first = next(s for s in doc["steps"].values() if s["attempt"] == 1)
    assert first["status"] == "Failed"
    assert first["error"]["code"] == "timeout.heartbeat"
    assert first["error"]["message"] == "sent no heartbeat for 0.3s (its heartbeat_timeout)"
    assert [f["code"] for f in await _failures(engine, doc["id"])] == ["timeout.heartbeat"]


async def test_a_handler_that_beats_runs_past_its_heartbeat_timeout(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: beating
        steps:
          - id: export
            type: hb.pages
            heartbeat_timeout: 500ms
            input: {pages: 25, gap: 0.04}
        output: "{{ steps.export.output }}"
        """
    )
    # 25 pages take a second, twice the heartbeat_timeout: each beat moved it on.
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == {"resumedFrom": 0, "attempt": 1}


async def test_the_step_timeout_still_ends_an_attempt_that_beats(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: beating_too_long
        steps:
          - id: export
            type: hb.pages
            timeout: 300ms
            heartbeat_timeout: 200ms
            input: {pages: 100, gap: 0.02}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    error = latest(doc, "export")["error"]
    assert (error["code"], error["message"]) == ("timeout", "timed out after 0.3s")


async def test_a_timeout_the_handler_raises_itself_keeps_its_own_failure(
    run_yaml: RunYaml,
) -> None:
    doc = await run_yaml(
        """
        name: own
        steps:
          - {id: own, type: hb.own_timeout, heartbeat_timeout: 1m}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    error = latest(doc, "own")["error"]
    assert error["code"] == "internal"
    assert error["message"].startswith("TimeoutError")

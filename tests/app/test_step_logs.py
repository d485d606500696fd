"""Step logs: what handlers log through ctx.logger is kept per attempt, bounded, redacted,
written with the attempt's result, and read back (and followed) through the app layer."""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from flowledger.app import App
from flowledger.app.models import FollowStepLogs, ListStepLogs
from flowledger.config import Settings
from flowledger.errors import InvalidInputError, NotFoundError


class TalkInput(BaseModel):
    lines: int = 2
    token: str = ""
    fail_first: bool = False
    size: int = 10


class Done(BaseModel):
    said: int


def talking_registry(gate: asyncio.Event | None = None) -> StepRegistry:
    registry = StepRegistry.with_builtins()

    @step_type("test.talk", secret_fields=["token"])
    async def talk(data: TalkInput, ctx: StepContext) -> Done:
        ctx.logger.debug("not kept at INFO")
        for i in range(data.lines):
            ctx.logger.info("line %d token=%s %s", i, data.token, "x" * data.size)
        if gate is not None:
            await gate.wait()
        if data.fail_first and ctx.attempt == 1:
            try:
                raise ValueError("first attempt breaks")
            except ValueError:
                ctx.logger.exception("attempt %d failed", ctx.attempt)
            raise StepError("try again", retryable=True)
        ctx.logger.warning("done after %d attempts", ctx.attempt)
        return Done(said=data.lines)

    registry.register(talk)
    return registry


def workflow(**input: Any) -> str:
    retry = "retry: {max_attempts: 2, initial_delay: 10ms}" if input.get("fail_first") else ""
    return textwrap.dedent(
        f"""\
        name: talker
        steps:
          - id: talk
            type: test.talk
            input: {input or {}}
            {retry}
        """
    )


@asynccontextmanager
async def opened(
    db_url: str, registry: StepRegistry, settings: Settings | None = None
) -> AsyncIterator[App]:
    engine = Engine(db_url, registry=registry, settings=settings or Settings.from_env())
    async with engine, App(engine=engine) as application:
        yield application


async def run(application: App, text: str) -> dict[str, Any]:
    compiled = application.engine.load_text(text, "talker.yaml")
    return await application.engine.run(compiled, {})


async def logs(application: App, execution_id: str, **kw: Any) -> list[dict[str, Any]]:
    page = await application.step_logs.list(ListStepLogs(id=execution_id, **kw))
    return [dict(line) for line in page["items"]]


async def test_lines_at_or_above_info_are_kept_in_order_with_their_attempt(db_url: str) -> None:
    async with opened(db_url, talking_registry()) as application:
        doc = await run(application, workflow(lines=3))
        lines = await logs(application, doc["id"])
    assert [(line["level"], line["message"].split(" token")[0]) for line in lines] == [
        ("INFO", "line 0"),
        ("INFO", "line 1"),
        ("INFO", "line 2"),
        ("WARNING", "done after 1 attempts"),
    ]
    [step] = doc["steps"].values()
    assert {(line["stepId"], line["attempt"], line["stepExecutionId"]) for line in lines} == {
        ("talk", 1, step["id"])
    }
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)


async def test_each_attempt_keeps_its_own_lines_and_exceptions_carry_their_traceback(
    db_url: str,
) -> None:
    async with opened(db_url, talking_registry()) as application:
        doc = await run(application, workflow(lines=1, fail_first=True))
        lines = await logs(application, doc["id"])
    assert doc["runtimeStatus"] == "Completed"
    assert [(line["attempt"], line["level"]) for line in lines] == [
        (1, "INFO"),
        (1, "ERROR"),
        (2, "INFO"),
        (2, "WARNING"),
    ]
    error = lines[1]["message"]
    assert error.startswith("attempt 1 failed\nTraceback")
    assert "ValueError: first attempt breaks" in error


async def test_one_attempt_s_lines_are_read_by_its_step_execution_id(db_url: str) -> None:
    """What the web page's attempt shows: its own lines (the failed first attempt's
    traceback), not its retry's, paged as the API's are."""
    async with opened(db_url, talking_registry()) as application:
        doc = await run(application, workflow(lines=3, fail_first=True))
        first, second = sorted(doc["steps"].values(), key=lambda s: s["attempt"])
        failed = await logs(application, doc["id"], attempts=[first["id"]])
        paged = await application.step_logs.list(
            ListStepLogs(id=doc["id"], attempts=[second["id"]], limit=2)
        )
        rest = await logs(application, doc["id"], attempts=[second["id"]], cursor="0")
        none = await logs(application, doc["id"], attempts=["not-an-attempt"])
    assert [(line["attempt"], line["level"]) for line in failed] == [(1, "INFO")] * 3 + [
        (1, "ERROR")
    ]
    assert "Traceback" in failed[-1]["message"]
    assert [line["stepExecutionId"] for line in paged["items"]] == [second["id"]] * 2
    assert paged["nextCursor"] is not None
    assert len(rest) == 4 and none == []


async def test_secrets_are_redacted_as_in_step_outputs(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLEDGER_SECRET_TALK_TOKEN", "tok-5ecret-value")
    text = workflow(lines=1).replace(
        "{'lines': 1}", '{lines: 1, token: "{{ secrets.TALK_TOKEN }}"}'
    )
    async with opened(db_url, talking_registry()) as application:
        doc = await run(application, text)
        lines = await logs(application, doc["id"])
    assert lines[0]["message"].startswith("line 0 token=***secrets.TALK_TOKEN*** ")
    assert all("5ecret" not in line["message"] for line in lines)


async def test_the_level_threshold_is_a_setting(db_url: str) -> None:
    settings = Settings.from_env()
    warning_only = dataclasses.replace(settings, step_log_level="WARNING")
    async with opened(db_url, talking_registry(), warning_only) as application:
        doc = await run(application, workflow(lines=3))
        lines = await logs(application, doc["id"])
    assert [line["level"] for line in lines] == ["WARNING"]


async def test_an_attempt_keeps_at_most_its_byte_budget_and_says_how_many_were_dropped(
    db_url: str,
) -> None:
    settings = Settings.from_env()
    small = dataclasses.replace(settings, step_log_limit=1024)
    async with opened(db_url, talking_registry(), small) as application:
        doc = await run(application, workflow(lines=50, size=90))
        lines = await logs(application, doc["id"])
    kept = [line for line in lines if line["level"] == "INFO"]
    assert sum(len(line["message"].encode()) for line in kept) <= 1024
    assert 0 < len(kept) < 50
    note = lines[-1]
    assert note["level"] == "WARNING"
    # The step's own final warning is over the budget too: it is counted, not kept.
    assert note["message"].startswith(f"{50 - len(kept) + 1} more log lines dropped")
    assert "1024 bytes" in note["message"]


async def test_lines_are_written_with_the_attempt_result_not_one_commit_per_line(
    db_url: str,
) -> None:
    gate = asyncio.Event()
    async with opened(db_url, talking_registry(gate)) as application:
        compiled = application.engine.load_text(workflow(lines=2), "talker.yaml")
        execution_id = await application.engine.start(compiled, {})
        running = asyncio.create_task(application.engine.drive(execution_id))
        store = application.engine.store
        # The step has started (its start is committed) and logged both lines by now...
        await _until(lambda: _started(store, execution_id))
        assert await store.get_step_logs(execution_id) == []  # ...which wait for its result
        gate.set()
        await running
        lines = await logs(application, execution_id)
    assert [line["level"] for line in lines] == ["INFO", "INFO", "WARNING"]


async def test_follow_gives_every_line_then_ends_with_the_execution(db_url: str) -> None:
    gate = asyncio.Event()
    async with opened(db_url, talking_registry(gate)) as application:
        compiled = application.engine.load_text(workflow(lines=2), "talker.yaml")
        execution_id = await application.engine.start(compiled, {})
        followed: list[str] = []

        async def follow() -> None:
            async for line in application.step_logs.follow(FollowStepLogs(id=execution_id)):
                followed.append(line["level"])

        follower = asyncio.create_task(follow())
        running = asyncio.create_task(application.engine.drive(execution_id))
        await _until(lambda: _started(application.engine.store, execution_id))
        assert not follower.done()
        gate.set()
        await running
        await asyncio.wait_for(follower, 10)
    assert followed == ["INFO", "INFO", "WARNING"]


async def test_paging_step_filter_and_errors(db_url: str) -> None:
    async with opened(db_url, talking_registry()) as application:
        doc = await run(application, workflow(lines=5))
        first = await application.step_logs.list(ListStepLogs(id=doc["id"], limit=2))
        assert len(first["items"]) == 2 and first["nextCursor"] == str(first["items"][-1]["id"])
        rest = await logs(application, doc["id"], after=int(first["nextCursor"]))
        assert len(rest) == 4
        assert await logs(application, doc["id"], steps=["nope"]) == []
        assert len(await logs(application, doc["id"], steps=["talk"])) == 6
        assert await application.step_logs.counts(doc["id"]) == {"INFO": 5, "WARNING": 1}
        with pytest.raises(NotFoundError):
            await logs(application, "no-such-execution")
        with pytest.raises(InvalidInputError):
            ListStepLogs(id=doc["id"], limit=0)


async def _started(store: Any, execution_id: str) -> bool:
    steps = await store.get_step_executions(execution_id)
    return any(s["status"] == "InProgress" for s in steps)


async def _until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait for a condition the code under test makes true (polls the database)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def test_a_loop_bodys_lines_say_their_iteration(db_url: str) -> None:
    """A loop body's lines read ``talk#1`` for every iteration alike (tour 20B): they now
    carry the iterations, as the body's step events do in ``detail.loop``."""
    text = textwrap.dedent(
        """\
        name: looped
        steps:
          - id: before
            type: test.talk
            input: {lines: 1}
          - id: each
            type: sys.loop
            input: {items: [10, 20], concurrency: 1}
            steps:
              - {id: talk, type: test.talk, input: {lines: 1}}
        """
    )
    async with opened(db_url, talking_registry()) as application:
        doc = await application.engine.run(application.engine.load_text(text, "l.yaml"), {})
        lines = await logs(application, doc["id"], steps=["talk", "before"])
    found = sorted((line["stepId"], tuple(line["loop"].items())) for line in lines)
    assert found == [
        ("before", ()),
        ("before", ()),
        ("talk", (("each", 0),)),
        ("talk", (("each", 0),)),
        ("talk", (("each", 1),)),
        ("talk", (("each", 1),)),
    ], found

"""Custom step types the runtime tests register: flaky, slow, counting, concurrency-measuring."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pydantic import BaseModel

from flowledger import StepContext, StepError, StepType, step_type


class Recorder:
    """What the handlers saw; one per test."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.keys: dict[str, list[str]] = {}
        self.running = 0
        self.max_running = 0
        self.gate = asyncio.Event()


class FlakyInput(BaseModel):
    fail_times: int = 0
    name: str = "flaky"
    #: Seconds each failure asks to wait (StepError's retry_after).
    retry_after: float | None = None


class Echo(BaseModel):
    value: Any = None
    attempt: int = 0


class SlowInput(BaseModel):
    seconds: float = 0.0
    name: str = "slow"
    block_first: bool = False


class AnyInput(BaseModel):
    value: Any = None


def make_steps(rec: Recorder) -> list[StepType]:
    @step_type("test.flaky")
    async def flaky(data: FlakyInput, ctx: StepContext) -> Echo:
        rec.calls[data.name] += 1
        rec.keys.setdefault(data.name, []).append(ctx.idempotency_key)
        if ctx.attempt <= data.fail_times:
            message = f"attempt {ctx.attempt} failed on purpose"
            raise StepError(message, retry_after=data.retry_after)
        return Echo(value=data.name, attempt=ctx.attempt)

    @step_type("test.slow")
    async def slow(data: SlowInput, ctx: StepContext) -> Echo:
        rec.calls[data.name] += 1
        rec.keys.setdefault(data.name, []).append(ctx.idempotency_key)
        rec.running += 1
        rec.max_running = max(rec.max_running, rec.running)
        try:
            if data.block_first and rec.calls[data.name] == 1:
                await asyncio.Event().wait()  # never returns: the "process" dies here
            await asyncio.sleep(data.seconds)
        finally:
            rec.running -= 1
        return Echo(value=data.name, attempt=ctx.attempt)

    @step_type("test.echo")
    async def echo(data: AnyInput, ctx: StepContext) -> dict[str, Any]:
        return {"value": data.value}

    @step_type("test.sync_echo")
    def sync_echo(data: AnyInput, ctx: StepContext) -> dict[str, Any]:
        return {"value": data.value, "thread": "worker"}

    @step_type("test.crash")
    async def crash(data: AnyInput, ctx: StepContext) -> dict[str, Any]:
        raise RuntimeError("boom")

    return [flaky, slow, echo, sync_echo, crash]

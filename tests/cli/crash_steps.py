"""Step types for the crash tests: a side effect recorded in a ledger file, keyed for idempotency."""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

from flowledger import StepContext, step_type


class WorkInput(BaseModel):
    ms: int = 20
    ledger: str


class WorkOutput(BaseModel):
    key: str
    attempt: int


@step_type("crash.work")
async def work(data: WorkInput, ctx: StepContext) -> WorkOutput:
    """Sleep, then append "key attempt" to the ledger: the side effect a crash may repeat."""
    await asyncio.sleep(data.ms / 1000)
    line = f"{ctx.idempotency_key} {ctx.attempt} {os.getpid()}\n".encode()
    fd = os.open(data.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return WorkOutput(key=ctx.idempotency_key, attempt=ctx.attempt)

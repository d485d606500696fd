"""Step types for the benchmarks."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from flowledger import StepContext, step_type


class IoInput(BaseModel):
    ms: int = 0


@step_type("bench.io")
async def io(data: IoInput, ctx: StepContext) -> dict[str, Any]:
    """Stand-in for an I/O-bound step: waits ``ms`` milliseconds."""
    if data.ms:
        await asyncio.sleep(data.ms / 1000)
    return {"attempt": ctx.attempt}

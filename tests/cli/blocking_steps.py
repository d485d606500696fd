"""A step type that blocks the event loop: an async handler calling blocking code."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from flowledger import StepContext, step_type


class HoldInput(BaseModel):
    #: The handler blocks until this file exists (at most 60 s).
    until: str


@step_type("block.hold")
async def hold(data: HoldInput, ctx: StepContext) -> dict[str, bool]:
    """The mistake under test: ``time.sleep`` in an ``async def`` holds the whole loop."""
    deadline = time.monotonic() + 60
    while not os.path.exists(data.until) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"released": os.path.exists(data.until)}

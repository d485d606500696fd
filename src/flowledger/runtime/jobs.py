"""Worker duty: job runs: start each workflow of a job run after the one before it ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowledger.runtime.engine import Engine


class JobAdvancer:
    name = "jobs"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run_once(self) -> float:
        return 60.0

"""Worker duty: schedule triggers: one execution per tick, whatever the number of workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowledger.runtime.engine import Engine


class Scheduler:
    name = "schedules"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run_once(self) -> float:
        return 60.0

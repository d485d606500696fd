"""Worker duty: entity events into the executions their triggers start."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowledger.runtime.engine import Engine


class EntityDispatcher:
    name = "entity_dispatch"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run_once(self) -> float:
        return 60.0

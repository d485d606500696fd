"""Background duties of a worker besides running executions: schedules, entity events,
job runs, outbound webhook deliveries."""

from __future__ import annotations

from typing import Protocol


class Duty(Protocol):
    name: str

    async def run_once(self) -> float:
        """Do what is due now; return how many seconds until it wants to run again."""
        ...

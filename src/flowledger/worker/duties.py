"""Background duties of a worker besides running executions: schedules, entity events,
job runs, outbound webhook deliveries, retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from flowledger.runtime.engine import Engine
from flowledger.runtime.pruning import prune

#: Seconds between two retention rounds once nothing is left to prune.
EVERY = 300.0
#: Batches one retention round deletes at most.
ROUND_BATCHES = 10


class Duty(Protocol):
    name: str

    async def run_once(self) -> float:
        """Do what is due now; return how many seconds until it wants to run again."""
        ...


class RetentionDuty:
    """Deletes finished executions older than the ``retention`` setting
    (``FLOWLEDGER_RETENTION``), with everything they hold (runtime.pruning): a few
    batches per round, so a large backlog never holds the worker's duties up for long."""

    name = "retention"

    def __init__(self, engine: Engine, retention: timedelta, *, every: float = EVERY) -> None:
        self.engine = engine
        self.retention = retention
        self.every = every

    async def run_once(self) -> float:
        pruned = await prune(self.engine, self.retention, max_batches=ROUND_BATCHES)
        # A full round means more is due: come back soon rather than after ``every``.
        return 0.0 if pruned.batches >= ROUND_BATCHES else self.every

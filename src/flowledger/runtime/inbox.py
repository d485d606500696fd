"""The runner's inbox: signals from outside (a person's input, a cancel, a child's end).

Signals are rows written by anyone (CLI, API, other executions); the owner of the
execution reads them between rounds and marks each consumed in the same commit
that records what it did about it, so a signal is acted on exactly once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flowledger.codec import loads

if TYPE_CHECKING:
    from flowledger.runtime.runner import ExecutionRunner

#: How often a running execution looks for signals (cancel) while busy or waiting.
POLL_INTERVAL = 1.0
#: Faster while it waits for children that run in this same process.
CHILD_POLL_INTERVAL = 0.2


class Inbox:
    def __init__(self, runner: ExecutionRunner) -> None:
        self.runner = runner
        self._checked_at = float("-inf")

    def poke(self) -> None:
        """Look at the next chance (something was sent that this process knows of)."""
        self._checked_at = float("-inf")

    def checked(self) -> None:
        """Count as looked at now (nothing can be waiting yet)."""
        self._checked_at = time.monotonic()

    @property
    def interval(self) -> float:
        waits = self.runner.children.waiting and self.runner.inline_children
        return CHILD_POLL_INTERVAL if waits else POLL_INTERVAL

    def due(self) -> bool:
        return time.monotonic() - self._checked_at >= self.interval

    def seconds_to_next(self) -> float:
        return max(0.0, self._checked_at + self.interval - time.monotonic())

    async def take(self) -> None:
        self._checked_at = time.monotonic()
        runner = self.runner
        rows = await runner.services.store.pending_signals(runner.id)
        children_moved = False
        if rows:
            runner.signals_taken += len(rows)
            runner.journal.set_execution(signals_taken=runner.signals_taken)
        for row in rows:
            runner.journal.consume(row["id"])
            payload = loads(row["payload"]) or {}
            kind = row["kind"]
            if runner.status.terminal:
                continue
            if kind == "cancel":
                runner.cancel_execution(
                    str(payload.get("reason") or "cancelled"), by=row["created_by"]
                )
            elif kind == "input":
                runner.inputs.deliver(payload)
            elif kind in ("child_done", "child_waiting"):
                children_moved = True
        if children_moved and not runner.status.terminal:
            runner.resume_status()
            await runner.children.refresh()

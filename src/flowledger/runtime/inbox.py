"""The runner's inbox: signals from outside (a person's input, a cancel, a child's end).

Signals are rows written by anyone (CLI, API, other executions); the owner of the
execution reads them between rounds and marks each consumed in the same commit
that records what it did about it, so a signal is acted on exactly once.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from flowledger.codec import loads
from flowledger.runtime.children import ChildWaits
from flowledger.runtime.journal import Journal
from flowledger.runtime.lifecycle import ExecutionLifecycle
from flowledger.runtime.services import Services
from flowledger.runtime.status import ExecutionStatus
from flowledger.runtime.waits import InputWaits

#: How often a running execution looks for signals (cancel) while busy or waiting.
POLL_INTERVAL = 1.0
#: Faster while it waits for children that run in this same process.
CHILD_POLL_INTERVAL = 0.2


class Addressee(Protocol):
    """The execution signals are for, as its inbox acts on them."""

    id: str
    services: Services
    journal: Journal
    lifecycle: ExecutionLifecycle
    #: Signals acted on so far (stored with the commit that acts on the next ones).
    signals_taken: int
    #: Children run in this process: look for their signals more often.
    inline_children: bool

    @property
    def status(self) -> ExecutionStatus: ...

    def cancel_execution(self, reason: str, *, by: str) -> None: ...

    def resume_status(self) -> None: ...

    def another_wait(self) -> None: ...


class Inbox:
    def __init__(self, runner: Addressee, inputs: InputWaits, children: ChildWaits) -> None:
        self.runner = runner
        self.inputs = inputs
        self.children = children
        self._checked_at = float("-inf")
        #: Signals taken here: their consumption is written with the round's commit, and
        #: a look before it (a poke: a child run here ended) read them again, acting on
        #: each twice (a child's question announced twice, ``signals_taken`` overcounted).
        self._taken: set[str] = set()

    def poke(self) -> None:
        """Look at the next chance (something was sent that this process knows of)."""
        self._checked_at = float("-inf")

    def checked(self) -> None:
        """Count as looked at now (nothing can be waiting yet)."""
        self._checked_at = time.monotonic()

    @property
    def interval(self) -> float:
        waits = self.children.waiting and self.runner.inline_children
        return CHILD_POLL_INTERVAL if waits else POLL_INTERVAL

    def due(self) -> bool:
        return time.monotonic() - self._checked_at >= self.interval

    def seconds_to_next(self) -> float:
        return max(0.0, self._checked_at + self.interval - time.monotonic())

    async def _asks_anew(self, began_asking: dict[str, datetime]) -> bool:
        """A child still asking began to after this execution last announced its wait
        (``child_waiting``'s instant against the last ``execution.awaiting_input``): a
        question no announcement covered. A ``child_waiting`` alone may well be covered:
        this execution may have read the child's row asking, and announced, before the
        signal. Only while this awaits input; the instants are two processes' clocks."""
        runner = self.runner
        asking = [at for child, at in began_asking.items() if child in self.children.asking]
        if not asking or runner.status != ExecutionStatus.AWAITING_USER_INPUT:
            return False
        announced = runner.lifecycle.announced_at
        if announced is None:  # announced by an earlier run of this execution, if at all
            store = runner.services.store
            announced = await store.last_event_at(runner.id, "execution.awaiting_input")
        return announced is not None and max(asking) > announced

    async def take(self) -> None:
        self._checked_at = time.monotonic()
        runner = self.runner
        rows = [
            row
            for row in await runner.services.store.pending_signals(runner.id)
            if row["id"] not in self._taken
        ]
        self._taken.update(row["id"] for row in rows)
        children_moved = False
        #: Children whose question the parent may have announced ended, or that asked a
        #: new one while waiting (runtime.lifecycle).
        renewed: set[str] = set()
        #: Children that began waiting for a person, and when (their signal's instant).
        began_asking: dict[str, datetime] = {}
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
                self.inputs.deliver(payload)
            elif kind == "child_done":
                children_moved = True
            elif kind == "child_waiting":
                children_moved = True
                began_asking[str(payload.get("childId"))] = row["created_at"]
            elif kind in ("child_resumed", "child_asked"):
                children_moved = True
                renewed.add(str(payload.get("childId")))
        if children_moved and not runner.status.terminal:
            # Read the children first: the execution resumes only if no person is waited
            # for any more (a child that ended while others wait changes nothing).
            await self.children.refresh()
            runner.resume_status()
            if renewed & self.children.asking or await self._asks_anew(began_asking):
                # Such a child asks a question no announcement of this one covered (it
                # resumed, or asked another): announced now if this still awaits input
                # (resumed, it is announced when it parks).
                runner.another_wait()

"""Rebuild a runner's state from the database alone, after a crash or in another process.

Rounds commit atomically, so the rows always describe a consistent moment: steps
recorded final stay final (never re-run), suspended steps keep waiting for their
timer, and a step recorded running had its process die under it — it is marked
failed and re-run with attempt + 1 (at-least-once, with a stable idempotency key).
What a step in progress goes on with is its kind's driver's to say (``restore``):
a loop rebuilds its iterations, a waiting step waits again.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

from flowledger.codec import loads
from flowledger.definition.compiled import CompiledStep
from flowledger.definition.races import race_of
from flowledger.runtime.heartbeats import carry_heartbeat
from flowledger.runtime.ports import Recoverable
from flowledger.runtime.state import Scope, StepExecution, child_key
from flowledger.runtime.status import StepStatus
from flowledger.steps.base import StepKind
from flowledger.storage.base import Row
from flowledger.timeutil import iso

#: Said of an attempt whose end was never recorded: its process died (a kill, a crash, an
#: out-of-memory kill), or lost its hold on the execution (a database unavailable for
#: longer than its lease, a paused process) while the attempt ran.
CRASH_MESSAGE = (
    "the process running this step stopped, or lost its hold on the execution, before "
    "the step's end was recorded"
)
#: Earlier spellings of CRASH_MESSAGE, still in stored histories.
_EARLIER_CRASH_MESSAGES = ("the process running this step stopped before the step finished",)
#: A step whose attempts are cut like that this many times (``Services.max_step_cuts``,
#: ``FLOWLEDGER_MAX_STEP_CUTS``; 0: never) is failed, not run again: a step that kills its
#: own process (a segfault, memory) would otherwise take down every worker that claims its
#: execution, and a server running workers in its own process with it. Nothing tells such
#: a step from a well-behaved one whose processes were killed from outside (a crash loop
#: of something else, deploys): the message says both, and how to go on.
MAX_CRASHES = 5
#: The wait before a re-run after the n-th cut (the first re-runs at once: a deployment's
#: kill is the common case), so the executions sharing a dying worker get to finish.
CRASH_BACKOFF = (timedelta(0), timedelta(seconds=1), timedelta(seconds=4), timedelta(seconds=16))


def restore(runner: Recoverable, rows: list[Row]) -> None:
    latest: dict[str, dict[str, Row]] = defaultdict(dict)  # loop_key -> step_path -> row
    for row in rows:
        by_path = latest[row["loop_key"]]
        seen = by_path.get(row["step_path"])
        if seen is None or row["attempt"] > seen["attempt"]:
            by_path[row["step_path"]] = row
    runner.step_seq = itertools.count(max((r["seq"] for r in rows), default=0) + 1)
    restorer = _Restorer(runner, latest)
    restorer.restore_scope(runner.root)
    cuts = _cuts_so_far(rows) if restorer.crashed else {}
    for run in restorer.crashed:
        _rerun(runner, run, cuts.get((run.scope.key, run.step.path), 0) + 1)
    for driver in restorer.drivers:
        driver.restored()
    if runner.root.unfinished == 0 and not runner.root.closed:
        runner.scope_done(runner.root)


class _Restorer:
    """Rebuilds scopes from the newest rows (a :class:`~flowledger.runtime.ports.Restoring`)."""

    def __init__(self, runner: Recoverable, latest: dict[str, dict[str, Row]]) -> None:
        self.runner = runner
        self.latest = latest
        self.crashed: list[StepExecution] = []
        # Every kind's driver, once, in a fixed order: each moves its restored steps on.
        self.drivers = list(dict.fromkeys(runner.driver(kind) for kind in StepKind))

    def restore_scope(self, scope: Scope) -> None:
        runner = self.runner
        rows = self.latest.get(scope.key, {})
        for step in scope.graph.steps.values():
            row = rows.get(step.path)
            if row is None:
                continue
            run = _run_from_row(row, step, scope)
            scope.runs[step.id] = run
            if run.terminal:
                scope.unfinished -= 1
                for nxt in step.released:
                    scope.pending[nxt] -= 1
                for join_id in step.raced:  # as Outcomes._race counts, the race decided
                    if scope.pending[join_id] == 0:
                        continue
                    won = run.status == StepStatus.COMPLETED
                    scope.pending[join_id] = 0 if won else scope.pending[join_id] - 1
                    if won:
                        # Its running steps were cancelled in that round; those it cut
                        # had not started, and are disabled when their turn comes.
                        scope.cut_off(race_of(scope.graph.steps[join_id], scope.graph.steps))
            elif run.status == StepStatus.NOT_STARTED:
                runner.add_timer(run.wake_at or runner.clock.now(), "retry", run)
            elif runner.driver(step.step_type.kind).restore(run, self):
                if run.suspended and run.wake_at is not None:
                    runner.add_timer(run.wake_at, "wake", run)
            else:
                self.crashed.append(run)
            if run.due_at is not None and not run.terminal:
                runner.add_timer(run.due_at, "due", run)
        for sid in scope.graph.steps:
            if scope.pending[sid] == 0 and sid not in scope.runs:
                runner.queue(scope, sid)

    def started_indexes(self, run: StepExecution) -> list[int]:
        prefix = child_key(run.scope, run.step.id, 0)[: -len("0")]
        return sorted(
            int(key[len(prefix) :])
            for key in self.latest
            if key.startswith(prefix) and key[len(prefix) :].isdigit()
        )


def is_crash(message: object) -> bool:
    """Whether a step error says its attempt was cut (see CRASH_MESSAGE)."""
    return isinstance(message, str) and message.startswith(
        (CRASH_MESSAGE, *_EARLIER_CRASH_MESSAGES)
    )


def _cuts_so_far(rows: list[Row]) -> dict[tuple[str, str], int]:
    """(loop key, step path) -> attempts of it already recorded as cut."""
    cuts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        failed = row["status"] == StepStatus.FAILED and row["error"]
        if failed and is_crash((loads(row["error"]) or {}).get("message")):
            cuts[(row["loop_key"], row["step_path"])] += 1
    return cuts


def _rerun(runner: Recoverable, run: StepExecution, cut: int) -> None:
    """Record the attempt as cut (the ``cut``-th time for this step) and run the step
    again, after a wait that grows with the cuts; at the budget, fail it instead."""
    now = runner.clock.now()
    budget = runner.services.max_step_cuts
    last = 0 < budget <= cut
    message = CRASH_MESSAGE
    if last:
        message += (
            f", {cut} times: it is not run again. If the step ends its own process (a "
            "crash, more memory than the machine has), fix it first; if its processes "
            "were stopped from outside (restarts, deploys, kills), `flowledger executions "
            "retry` runs it again (FLOWLEDGER_MAX_STEP_CUTS sets how many cuts fail a step)"
        )
    run.status = StepStatus.FAILED
    run.failed_at = now
    run.error = {"message": message, "stepId": run.step.id, "attempt": run.attempt}
    run.error["code"] = "interrupted"
    runner.journal.touch(run)
    detail = {"error": message, "code": "interrupted", "willRetry": not last}
    runner.journal.event("step.failed", run, detail)
    if last:
        runner.fail_scope(run.scope, run)
        return
    nxt = runner.new_run(
        run.scope, run.step, run.attempt + 1, StepStatus.NOT_STARTED, run.idempotency_key
    )
    carry_heartbeat(run, nxt)  # the cut attempt's progress: the next resumes from it
    nxt.due_at = run.due_at
    delay = CRASH_BACKOFF[min(cut, len(CRASH_BACKOFF)) - 1]
    if not delay:
        runner.start_attempt(nxt)
        return
    nxt.wake_at = now + delay * random.uniform(0.75, 1.25)  # noqa: S311 - spreads re-runs
    runner.journal.event(
        "step.retry_scheduled",
        nxt,
        {"wakeAt": iso(nxt.wake_at), "delayMs": int((nxt.wake_at - now).total_seconds() * 1000)},
        at=now,
    )
    runner.add_timer(nxt.wake_at, "retry", nxt)


def _run_from_row(row: Row, step: CompiledStep, scope: Scope) -> StepExecution:
    state: Any = loads(row["state"])
    return StepExecution(
        id=row["id"],
        step=step,
        scope=scope,
        attempt=row["attempt"],
        status=StepStatus(row["status"]),
        seq=row["seq"],
        idempotency_key=row["idempotency_key"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        failed_at=row["failed_at"],
        due_at=row["due_at"],
        wake_at=row["wake_at"],
        suspended=bool(row["suspended"]),
        input=loads(row["input"]),
        output=loads(row["output"]),
        error=loads(row["error"]),
        state=state if isinstance(state, dict) else None,
        children=loads(row["children"]) or None,
        persisted=True,
        input_stored=True,
    )

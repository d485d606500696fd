"""The journal: turns state changes of one round into one atomic database batch.

Nothing a round changed is visible to anyone (observers, other processes) until
the batch is committed; events are numbered gap-free from the execution's counter.

The execution's progress columns (``event_seq``, ``current_state_name``,
``last_activity_at``) go with every write of its row (a status, its variables, a
wake-up), and otherwise at most once per ``PROGRESS_EVERY``: a round that only
starts and finishes steps writes step and event rows, not the execution's. SQLite
rewrites a whole row on UPDATE, trigger and context included, so a per-round write
made a 900 KB trigger cost 4.8x per step (bench/payload_bench.py); PostgreSQL made a
dead row version per step. While an execution runs, readers of its row may see
progress up to about a second old (the scheduler wakes at least that often, see
runtime.inbox.POLL_INTERVAL); once it parks, waits or ends, its row is exact. A
runner taking an execution over counts its events from the events themselves
(``Store.last_event_seq``), never from the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flowledger.codec import Codec
from flowledger.runtime.state import StepExecution
from flowledger.storage.base import Batch, ChildGuard, Row, RowParams, Store
from flowledger.storage.rowparams import event_rows
from flowledger.timeutil import Clock, iso

#: Told after each commit, with a function that makes the round's event rows (only
#: observers read them: made when asked).
EventSink = Callable[[Callable[[], list[Row]]], None]

#: How stale a running execution's progress columns may get (see the module docstring).
PROGRESS_EVERY = timedelta(seconds=1)


class Journal:
    def __init__(
        self,
        store: Store,
        codec: Codec,
        execution_id: str,
        epoch: int,
        last_seq: int,
        clock: Clock,
    ) -> None:
        self.clock = clock
        #: Share transactions with other executions' rounds (set when a worker runs many).
        self.group_commits = False
        #: Asked at each commit when ``group_commits`` is off: others commit at the same
        #: time (the engine drives several executions), so join their transaction.
        self.crowded: Callable[[], bool] | None = None
        self.store = store
        self.codec = codec
        self.execution_id = execution_id
        self.epoch = epoch
        self.seq = last_seq
        self._dirty: dict[str, StepExecution] = {}
        #: The round's events (storage.rowparams.EVENT), and the instant of each.
        self._events: list[RowParams] = []
        self._instants: list[datetime] = []
        #: The loop iterations of each step event (its scope's key), for observers.
        self._loops: list[str | None] = []
        #: How the store writes a timestamp (its driver parameter).
        self.timestamp_param = store.timestamp_param
        #: The instant of the round's last event: the execution's last activity.
        self._latest: datetime | None = None
        self._execution: dict[str, Any] = {}
        #: Columns of the execution's row computed when the round commits.
        self._at_commit: dict[str, Callable[[], Any]] = {}
        #: The step that started last (the execution's ``current_state_name``).
        self.state_name: str | None = None
        #: Progress recorded but not yet on the execution's row, and when it is due there.
        self._progress_stale = False
        self._progress_due: datetime | None = None
        self._links = Batch(execution_id, epoch)  # children, signals: rare, so kept apart
        self.sinks: list[EventSink] = []
        #: Told each guard of children after the commit decided it (ChildGuard.refused).
        self.on_child_guard: Callable[[ChildGuard], None] | None = None
        #: Called once, right before the round that releases the lease is committed (see
        #: ``release_lease``): whoever renews the lease stops renewing it first.
        self.on_release: Callable[[], None] | None = None
        self._releasing = False
        #: The instant the round's last step completion was recorded at, until a step
        #: start takes it (``take_completion``) or the round ends.
        self._completion: datetime | None = None

    # -- recording ----------------------------------------------------------------------------

    def event(
        self,
        kind: str,
        run: StepExecution | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        self.seq += 1
        at = self._latest = at or self.clock.now()
        self._instants.append(at)
        self._loops.append(None if run is None else run.scope.key)
        text = self.codec.dumps(detail) if detail else None
        # storage.rowparams.EVENT's order, the driver's parameters as they are written.
        execution_id, seq, stored_at = self.execution_id, self.seq, self.timestamp_param(at)
        row: tuple[Any, ...]
        if run is None:
            row = (execution_id, seq, stored_at, kind, None, None, None, None, text)
        else:
            row = (execution_id, seq, stored_at, kind, run.id, run.step.id, run.attempt,
                   str(run.status), text)  # fmt: skip
        self._events.append(row)

    def completed(self, at: datetime) -> None:
        """A step's completion was recorded at ``at`` (see ``take_completion``)."""
        self._completion = at

    def take_completion(self) -> datetime | None:
        """The instant of this round's last step completion, once, for the step started
        right after it (a chain's successor): it starts when its predecessor's end was
        recorded, which saves a clock read and a timestamp text a step. None when no
        completion is waiting: read the clock. Forgotten when the round commits and
        before anything the round awaits (``forget_completion``), so it is never older
        than the synchronous bookkeeping between the two."""
        at, self._completion = self._completion, None
        return at

    def forget_completion(self) -> None:
        self._completion = None

    def touch(self, run: StepExecution) -> None:
        """Mark a step run changed: it is written (inserted or updated) at the next commit."""
        self._dirty[run.id] = run
        run.forget_envelope()

    def set_execution(self, **columns: Any) -> None:
        self._execution.update(columns)

    def set_execution_at_commit(self, column: str, value: Callable[[], Any]) -> None:
        """``column`` of the execution's row takes ``value()``, called when this round
        commits: what changes many times in a round (the variables, by the steps of a
        concurrent loop) is serialized once."""
        self._at_commit[column] = value

    def release_lease(self) -> None:
        """The execution ends in this round, and its lease with it: the round's fenced
        UPDATE of the row clears the lease too, so ending costs no release of its own
        (a transaction on SQLite, a round trip on PostgreSQL). The epoch stays: it still
        fences any later round of this runner, and a takeover bumps it as ever."""
        self._execution.update(lease_owner=None, lease_expires_at=None, wake_at=None)
        self._releasing = True

    def create_execution(self, row: Row, created: Row) -> None:
        """A new execution that this round starts (a sub-workflow child, an ``on_failure``
        handler), created with its ``created`` event in the same commit as the round."""
        self._links.create_executions.append(row)
        self._links.create_events.append(created)

    def guard_children(self, guard: ChildGuard) -> None:
        """Create ``guard.child_ids`` (given to ``create_execution``) only if the commit
        finds the step's failed children within ``guard.tolerated``."""
        self._links.child_guards.append(guard)

    def signal(self, execution_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Tell another execution something (a child ended, a cancel), in this round's commit."""
        self._links.signals.append(
            {
                "id": str(uuid.uuid4()),
                "execution_id": execution_id,
                "kind": kind,
                "step_id": None,
                "payload": self.codec.dumps(payload),
                "created_by": f"execution:{self.execution_id}",
                "created_at": self.clock.now(),
                "consumed_at": None,
            }
        )

    def notify(self, event: str, workflow_name: str, data: dict[str, Any]) -> None:
        """Report a status change to outbound webhook subscribers, in this round's commit
        (storage.outbox writes one delivery per matching subscription)."""
        now = self.clock.now()
        message_id = f"msg_{uuid.uuid4().hex}"
        body = {"type": event, "timestamp": iso(now), "data": data}
        self._links.notifications.append(
            {
                "message_id": message_id,
                "event": event,
                "workflow_name": workflow_name,
                "execution_id": self.execution_id,
                "payload": self.codec.dumps(body),
                "at": now,
            }
        )

    def consume(self, signal_id: str) -> None:
        self._links.consumed_signals.append(signal_id)

    @property
    def pending(self) -> bool:
        links = self._links
        return bool(
            self._dirty
            or self._events
            or self._execution
            or self._at_commit
            or links.create_executions
            or links.signals
            or links.consumed_signals
        )

    # -- committing ---------------------------------------------------------------------------

    async def commit(self) -> None:
        self._completion = None
        # Nothing new: only progress owed to the row and due now makes a commit.
        if not self.pending and not (
            self._progress_stale and self._progress_is_due(self.clock.now())
        ):
            return
        batch = self._links
        batch.epoch = self.epoch
        for run in self._dirty.values():
            if not run.persisted:
                batch.insert_steps.append(self._insert_params(run))
            else:
                batch.update_steps.append(self._update_params(run))
            if run.logs is not None and run.logs.pending:
                self._logs(batch, run)
        # The round's last event is its last activity (one clock read and one instant
        # to convert fewer); a round without events reads the clock.
        execution = batch.execution = self._execution  # a new dict after each commit
        if self._at_commit:
            for column, value in self._at_commit.items():
                execution[column] = value()
            self._at_commit = {}
        latest = self._latest or self.clock.now()
        if execution or self._progress_is_due(latest):
            execution["event_seq"] = self.seq
            execution["last_activity_at"] = latest
            if self.state_name is not None:
                execution["current_state_name"] = self.state_name
            self._progress_due = latest + PROGRESS_EVERY
            self._progress_stale = False
        else:
            self._progress_stale = True
        batch.events = self._events
        if self._releasing:
            # Before the commit, not after: a renewal answered after this round committed
            # finds the lease cleared, and must not take that for a lost lease. Should
            # this commit fail, the runner stops anyway; its lease lapses.
            self._releasing = False
            if self.on_release is not None:
                self.on_release()
        group = self.group_commits or (self.crowded is not None and self.crowded())
        await self.store.commit(batch, group=group)
        for run in self._dirty.values():
            run.persisted = True
            run.input_stored = True
        events, instants, loops = self._events, self._instants, self._loops
        self._dirty = {}
        self._events = []
        self._instants = []
        self._loops = []
        self._execution = {}
        self._latest = None
        self._links = Batch(self.execution_id, self.epoch)
        if batch.child_guards and self.on_child_guard is not None:
            for guard in batch.child_guards:
                self.on_child_guard(guard)
        for sink in self.sinks:
            sink(lambda: event_rows(events, instants, loops))

    async def settle(self) -> None:
        """Write the progress the execution's row still lacks (before the lease goes)."""
        if self._progress_stale:
            self._progress_due = None
            await self.commit()

    def _progress_is_due(self, now: datetime) -> bool:
        due = self._progress_due
        return due is None or now >= due

    def _logs(self, batch: Batch, run: StepExecution) -> None:
        """The attempt's buffered log lines, redacted like its output, into this commit."""
        assert run.logs is not None
        dumps = self.codec.dumps
        for at, level, message in run.logs.drain():
            batch.step_logs.append(
                {
                    "execution_id": self.execution_id,
                    "step_execution_id": run.id,
                    "step_id": run.step.id,
                    "attempt": run.attempt,
                    "at": at,
                    "level": level,
                    "message": dumps(message),
                }
            )

    def _update_params(self, run: StepExecution) -> tuple[Any, ...]:
        """storage.rowparams.STEP_UPDATE (or STEP_UPDATE_INPUT when the attempt's input
        is not written yet), or their plain layouts (see ``_changing``)."""
        if run.input_stored:
            return (*self._changing(run), run.id)
        return (*self._changing(run), self._input(run), run.id)

    def _insert_params(self, run: StepExecution) -> tuple[Any, ...]:
        """storage.rowparams.STEP_INSERT, or STEP_INSERT_PLAIN (see ``_changing``)."""
        step = run.step
        return (
            run.id,
            self.execution_id,
            run.seq,
            step.id,
            step.path,
            run.scope.key,
            step.type_name,
            run.attempt,
            run.idempotency_key,
            self._input(run),
            *self._changing(run),
        )

    def _input(self, run: StepExecution) -> str | None:
        return self.codec.dumps(run.input if run.stored_input is None else run.stored_input)

    def _changing(self, run: StepExecution) -> tuple[Any, ...]:
        """storage.rowparams.STEP_CHANGING, or STEP_CHANGING_PLAIN when every one of the
        columns it leaves out (STEP_QUIET) is NULL: most attempts' rows, each NULL
        parameter costing the driver more than the test here."""
        stamp, dumps = self.timestamp_param, self.codec.dumps  # local names: a hot loop
        started, completed, failed = run.started_at, run.completed_at, run.failed_at
        due, wake = run.due_at, run.wake_at
        if (
            failed is None
            and due is None
            and wake is None
            and run.error is None
            and run.state is None
            and not run.children
        ):
            return (
                str(run.status),
                None if started is None else stamp(started),
                None if completed is None else stamp(completed),
                1 if run.suspended else 0,
                _output_json(run, dumps),
            )
        return (
            str(run.status),
            None if started is None else stamp(started),
            None if completed is None else stamp(completed),
            None if failed is None else stamp(failed),
            None if due is None else stamp(due),
            None if wake is None else stamp(wake),
            1 if run.suspended else 0,
            _output_json(run, dumps),
            None if run.error is None else dumps(run.error),
            None if run.state is None else dumps(run.state),
            dumps(run.children) if run.children else None,
        )


def _output_json(run: StepExecution, dumps: Callable[[Any], str | None]) -> str | None:
    if run.output_json is not None:
        return run.output_json
    return None if run.output is None else dumps(run.output)

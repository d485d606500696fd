"""The journal: turns state changes of one round into one atomic database batch.

Nothing a round changed is visible to anyone (observers, other processes) until
the batch is committed; events are numbered gap-free from the execution's counter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flowledger.codec import Codec
from flowledger.runtime.state import StepExecution
from flowledger.storage.base import Batch, Row, Store
from flowledger.timeutil import Clock, iso

EventSink = Callable[[list[Row]], None]


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
        self._events: list[Row] = []
        #: The instant of the round's last event: the execution's last activity.
        self._latest: datetime | None = None
        self._execution: dict[str, Any] = {}
        self._links = Batch(execution_id, epoch)  # children, signals: rare, so kept apart
        self.sinks: list[EventSink] = []

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
        self._events.append(
            {
                "execution_id": self.execution_id,
                "seq": self.seq,
                "at": at,
                "kind": kind,
                "step_execution_id": run.id if run else None,
                "step_id": run.step.id if run else None,
                "attempt": run.attempt if run else None,
                "status": str(run.status) if run else None,
                "detail": self.codec.dumps(detail) if detail else None,
            }
        )

    def touch(self, run: StepExecution) -> None:
        """Mark a step run changed: it is written (inserted or updated) at the next commit."""
        self._dirty[run.id] = run
        run.forget_envelope()

    def set_execution(self, **columns: Any) -> None:
        self._execution.update(columns)

    def create_execution(self, row: Row, created: Row) -> None:
        """A new execution (a sub-workflow child) created in the same commit as this round."""
        self._links.create_executions.append(row)
        self._links.create_events.append(created)

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
            or links.create_executions
            or links.signals
            or links.consumed_signals
        )

    # -- committing ---------------------------------------------------------------------------

    async def commit(self) -> None:
        if not self.pending:
            return
        batch = self._links
        batch.epoch = self.epoch
        for run in self._dirty.values():
            if not run.persisted:
                batch.insert_steps.append(self._insert_row(run))
            else:
                batch.update_steps.append(self._update_row(run))
            if run.logs is not None and run.logs.pending:
                self._logs(batch, run)
        # The round's last event is its last activity (one clock read and one instant
        # to convert fewer); a round without events reads the clock.
        now = self._latest or self.clock.now()
        batch.execution = {**self._execution, "event_seq": self.seq, "last_activity_at": now}
        batch.events = self._events
        group = self.group_commits or (self.crowded is not None and self.crowded())
        await self.store.commit(batch, group=group)
        for run in self._dirty.values():
            run.persisted = True
            run.input_stored = True
        events = self._events
        self._dirty = {}
        self._events = []
        self._execution = {}
        self._latest = None
        self._links = Batch(self.execution_id, self.epoch)
        for sink in self.sinks:
            sink(events)

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

    def _update_row(self, run: StepExecution) -> Row:
        """What can change in a written step row (never its key columns, ``attempt``
        included: an UPDATE naming an indexed column rewrites that index's entry)."""
        row = self._changing(run)
        if not run.input_stored:
            stored = run.input if run.stored_input is None else run.stored_input
            row["input"] = self.codec.dumps(stored)
        return row

    def _insert_row(self, run: StepExecution) -> Row:
        step = run.step
        stored = run.input if run.stored_input is None else run.stored_input
        row = self._changing(run)
        row.update(
            {
                "attempt": run.attempt,
                "input": self.codec.dumps(stored),
                "execution_id": self.execution_id,
                "seq": run.seq,
                "step_id": step.id,
                "step_path": step.path,
                "loop_key": run.scope.key,
                "type": step.type_name,
                "idempotency_key": run.idempotency_key,
            }
        )
        return row

    def _changing(self, run: StepExecution) -> Row:
        dumps = self.codec.dumps
        return {
            "id": run.id,
            "status": str(run.status),
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "failed_at": run.failed_at,
            "due_at": run.due_at,
            "wake_at": run.wake_at,
            "suspended": 1 if run.suspended else 0,
            "output": _output_json(run, dumps),
            "error": None if run.error is None else dumps(run.error),
            "state": None if run.state is None else dumps(run.state),
            "children": dumps(run.children) if run.children else None,
        }


def _output_json(run: StepExecution, dumps: Callable[[Any], str | None]) -> str | None:
    if run.output_json is not None:
        return run.output_json
    return None if run.output is None else dumps(run.output)

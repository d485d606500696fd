"""The status of one execution and every move of it (SPEC §4), each one journaled.

One job, apart from scheduling: the runner decides *when* an execution starts,
waits, completes, fails or is cancelled; this object makes the move — checked
against ``ALLOWED_MOVES``, written with its event, and told to the parent
execution when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowledger.codec import Codec
from flowledger.errors import FlowledgerError
from flowledger.runtime.journal import Journal
from flowledger.runtime.status import ALLOWED_MOVES, ExecutionStatus
from flowledger.timeutil import Clock

#: The status moves that outbound webhooks report (SPEC §6 subscriptions), by event name.
REPORTED: dict[ExecutionStatus, str] = {
    ExecutionStatus.COMPLETED: "execution.completed",
    ExecutionStatus.COMPLETED_NO_ACTION: "execution.completed",
    ExecutionStatus.FAILED: "execution.failed",
    ExecutionStatus.CANCELLED: "execution.cancelled",
    ExecutionStatus.AWAITING_USER_INPUT: "execution.awaiting_input",
}

#: What a cancel's reason is preceded by in the execution's error message (the API's
#: document keeps it; app.cancels reads the reason back).
CANCELLED_PREFIX = "cancelled: "


class ExecutionLifecycle:
    def __init__(
        self,
        execution_id: str,
        status: ExecutionStatus,
        parent_id: str | None,
        journal: Journal,
        clock: Clock,
        codec: Codec,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = execution_id
        self.status = status
        self.parent_id = parent_id
        self.journal = journal
        self.clock = clock
        self.codec = codec
        #: The execution document's ``execution`` template name (id, workflowName, ...).
        self.info: Mapping[str, Any] = info or {"id": execution_id}
        #: When this runner last announced a wait (``execution.awaiting_input``); None
        #: before it has (an earlier run's is in the events: runtime.inbox reads it).
        self.announced_at: datetime | None = None

    def set_status(self, status: ExecutionStatus, **columns: Any) -> None:
        if status not in ALLOWED_MOVES[self.status]:
            raise FlowledgerError(  # a scheduler bug, never a user's doing: stop before writing
                f"execution {self.id} cannot move from {self.status} to {status}"
            )
        self.status = status
        self.journal.set_execution(runtime_status=str(status), **columns)
        if status.terminal:
            self.journal.release_lease()

    def _report(self, status: ExecutionStatus) -> None:
        """One delivery per matching subscription, in this round's commit; called right
        after the event that records the change, whose ``seq`` the delivery carries: a
        receiver orders one execution's deliveries by it (retried ones arrive late), and
        a redelivery, the same row sent again, carries the same."""
        event = REPORTED.get(status)
        if event is not None:
            info = self.info
            self.journal.notify(
                event,
                str(info.get("workflowName") or ""),
                {
                    "executionId": self.id,
                    "seq": self.journal.seq,
                    "workflowName": info.get("workflowName"),
                    "workflowVersion": info.get("workflowVersion"),
                    "correlationId": info.get("correlationId"),
                    "runtimeStatus": str(status),
                },
            )

    def begin(self, now: datetime) -> None:
        self.set_status(ExecutionStatus.IN_PROGRESS, started_at=now)
        self.journal.event("execution.started", at=now)

    # Decision (the tour's 40 deliveries for one question): ``AwaitingUserInput`` means
    # "a person must act for this execution to go on", and one wait is announced once.
    # The execution moves there when nothing is left to run but people (and timers), and
    # back to InProgress only when no person is waited for any more (the runner's
    # ``resume_status``): a timer of another branch (a ``sys.delay``, a retry's back-off)
    # runs that branch on under AwaitingUserInput, and re-parking changes nothing. Before,
    # every such wake-up moved it to InProgress and back, each time with
    # ``execution.resumed`` and ``execution.awaiting_input`` events and a delivery.

    def await_people(self) -> None:
        """Nothing runs but waits for people: AwaitingUserInput, announced (no-op when
        it is already: the same waits are not announced again)."""
        if self.status == ExecutionStatus.IN_PROGRESS:
            self.set_status(ExecutionStatus.AWAITING_USER_INPUT)
            self.announced_at = self.clock.now()
            self.journal.event("execution.awaiting_input", at=self.announced_at)
            self._report(self.status)
            self._tell_parent("child_waiting")

    def another_wait(self) -> None:
        """A step began waiting for a person while the execution already awaits input (a
        branch that timers moved on asked a new question): announced as the first wait
        was (the event, one delivery per subscription), though the status stays."""
        if self.status == ExecutionStatus.AWAITING_USER_INPUT:
            self.announced_at = self.clock.now()
            self.journal.event("execution.awaiting_input", at=self.announced_at)
            self._report(self.status)
            self._tell_parent("child_asked")  # a parent awaiting input announces it too

    def resume(self) -> None:
        """Back to InProgress (the runner calls it when no person is waited for any more,
        and before completing)."""
        if self.status == ExecutionStatus.AWAITING_USER_INPUT:
            self.set_status(ExecutionStatus.IN_PROGRESS)
            self.journal.event("execution.resumed")
            # A parent awaiting input through this child resumes too, so the child's next
            # question is announced by it as the first was (untold, it stayed
            # AwaitingUserInput and announced nothing more).
            self._tell_parent("child_resumed")

    def complete(self, output: Any, *, no_action: bool) -> None:
        now = self.clock.now()
        status = ExecutionStatus.COMPLETED_NO_ACTION if no_action else ExecutionStatus.COMPLETED
        self.set_status(status, completed_at=now, output=self.codec.dumps(output))
        self.journal.event("execution.completed", None, {"status": str(status)}, at=now)
        self._report(status)
        self._tell_parent("child_done")

    def fail(self, error: dict[str, Any]) -> None:
        now = self.clock.now()
        self.set_status(ExecutionStatus.FAILED, failed_at=now, error=self.codec.dumps(error))
        self.journal.event("execution.failed", None, {"error": error.get("message")}, at=now)
        self._report(self.status)
        self._tell_parent("child_done")

    def cancel(self, reason: str, *, by: str) -> None:
        now = self.clock.now()
        error = {"message": CANCELLED_PREFIX + reason, "cancelledBy": by}
        self.set_status(ExecutionStatus.CANCELLED, completed_at=now, error=self.codec.dumps(error))
        self.journal.event("execution.cancelled", None, {"reason": reason, "by": by}, at=now)
        self._report(self.status)
        self._tell_parent("child_done")

    def _tell_parent(self, kind: str) -> None:
        if self.parent_id is not None:
            self.journal.signal(
                self.parent_id, kind, {"childId": self.id, "status": str(self.status)}
            )

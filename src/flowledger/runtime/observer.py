"""The observer seam: what metrics, the live UI and outbound webhooks plug into.

An :class:`Observer` hears, after the fact, what an engine did:

- ``events_committed``: a round's events, as SPEC §4 event documents, in commit order;
- ``step_attempt_started`` / ``step_attempt_finished``: derived from those events
  (``step.started``; ``step.completed``, ``step.failed``, ``step.cancelled``);
- ``execution_finished``: derived from ``execution.completed|failed|cancelled``;
- ``execution_claimed``: a worker claimed it, or ``Engine.drive`` leased it;
- ``lease_taken_over``: this process took over an execution another process held and
  stopped renewing (precise in ``Engine.drive``, which reads the holder before taking
  it; for worker claims the store does not say whose lease lapsed, so the takeover is
  recognised by its evidence, an attempt left in flight, and ``from_owner`` is None).

Rules for observers, which the engine relies on:

- callbacks run **after** the commit they report (never before: nothing reported can
  be rolled back), synchronously, on the engine's event loop;
- they must be cheap and must not block: an observer with heavy or slow work (HTTP
  calls, disk) puts the payload on its own queue and does the work elsewhere;
- an exception in an observer is logged once (per observer and callback) and
  swallowed: an observer never breaks an execution;
- each callback takes one frozen dataclass, so a new field never breaks a signature.

With no observer attached the engine does no observer work at all (one length check
per commit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from flowledger.logs import log_extra
from flowledger.runtime.documents import event_document
from flowledger.runtime.recovery import is_crash
from flowledger.storage.base import Row

log = logging.getLogger(__name__)

#: Step attempts whose start this process saw and whose end it has not seen yet are
#: remembered for their duration; past this many the oldest are forgotten.
MAX_OPEN_ATTEMPTS = 10_000

_FINISHING = {"step.completed", "step.failed", "step.cancelled"}
_ENDING = {"execution.completed", "execution.failed", "execution.cancelled"}


@dataclass(frozen=True)
class ExecutionInfo:
    """What the engine knows of the execution a round belongs to (for labels and traces)."""

    workflow: str = ""
    #: Step id -> step type name (``sys.http_request``, a plugin's type…).
    step_types: Mapping[str, str] = field(default_factory=dict)
    #: The W3C ``traceparent`` the execution joined when it was started, if any.
    traceparent: str | None = None


@dataclass(frozen=True)
class CommittedEvents:
    execution_id: str
    #: SPEC §4 event documents ``{seq, at, kind, stepExecutionId, ...}``, in seq order.
    events: Sequence[dict[str, Any]]
    #: The execution's workflow, step types and trace (not compared: context, not news).
    info: ExecutionInfo = field(default_factory=ExecutionInfo, compare=False)


@dataclass(frozen=True)
class StepAttempt:
    execution_id: str
    step_execution_id: str
    step_id: str
    attempt: int
    #: ``InProgress`` when started; ``Completed``, ``Failed`` or ``Cancelled`` when finished.
    status: str
    at: datetime
    #: Seconds from start to finish; None at the start, or when the start was not seen
    #: by this process and the event does not carry it.
    duration: float | None = None
    error: str | None = None
    #: A failed attempt that is retried (a new attempt is scheduled).
    will_retry: bool = False
    #: The execution's workflow, step types and trace (not compared: context, not news).
    info: ExecutionInfo = field(default_factory=ExecutionInfo, compare=False)

    @property
    def step_type(self) -> str:
        return self.info.step_types.get(self.step_id, "")


@dataclass(frozen=True)
class ExecutionFinished:
    execution_id: str
    #: ``Completed``, ``CompletedWithNoActionTaken``, ``Failed`` or ``Cancelled``.
    status: str
    at: datetime
    #: The execution's workflow, step types and trace (not compared: context, not news).
    info: ExecutionInfo = field(default_factory=ExecutionInfo, compare=False)


@dataclass(frozen=True)
class Claim:
    execution_id: str
    owner: str
    epoch: int


@dataclass(frozen=True)
class Takeover:
    execution_id: str
    #: The process whose lease lapsed; None when the store did not say (worker claims).
    from_owner: str | None
    to_owner: str


class Observer(Protocol):
    """What an engine tells its observers; subclass :class:`BaseObserver` to implement."""

    def events_committed(self, batch: CommittedEvents) -> None: ...
    def step_attempt_started(self, attempt: StepAttempt) -> None: ...
    def step_attempt_finished(self, attempt: StepAttempt) -> None: ...
    def execution_finished(self, finished: ExecutionFinished) -> None: ...
    def execution_claimed(self, claim: Claim) -> None: ...
    def lease_taken_over(self, takeover: Takeover) -> None: ...


class BaseObserver:
    """Every callback does nothing; override the ones you need."""

    def events_committed(self, batch: CommittedEvents) -> None:
        pass

    def step_attempt_started(self, attempt: StepAttempt) -> None:
        pass

    def step_attempt_finished(self, attempt: StepAttempt) -> None:
        pass

    def execution_finished(self, finished: ExecutionFinished) -> None:
        pass

    def execution_claimed(self, claim: Claim) -> None:
        pass

    def lease_taken_over(self, takeover: Takeover) -> None:
        pass


EventCallback = Callable[[str, list[dict[str, Any]]], None]


class EventCallbackObserver(BaseObserver):
    """``Engine.on_events(callback)``: ``callback(execution_id, event documents)``."""

    def __init__(self, callback: EventCallback) -> None:
        self.callback = callback

    def events_committed(self, batch: CommittedEvents) -> None:
        self.callback(batch.execution_id, list(batch.events))

    def __repr__(self) -> str:  # what a failure's log line names: the callback, not this
        callback = self.callback
        name = getattr(callback, "__qualname__", None) or repr(callback)
        module = getattr(callback, "__module__", None)
        return f"on_events callback {module}.{name}" if module else f"on_events callback {name}"


def _said(exc: Exception) -> str:
    """An observer's exception on the line that reports it (its traceback follows)."""
    text = str(exc)
    text = f"{text[:300]}…" if len(text) > 300 else text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Observers:
    """The fan-out an engine calls: every observer, in the order added, each guarded."""

    def __init__(self, owner: str, observers: Sequence[Observer] = ()) -> None:
        #: The engine's lease owner name (the ``to_owner`` of takeovers it makes).
        self.owner = owner
        self._observers: list[Observer] = list(observers)
        self._open: dict[str, datetime] = {}  # step execution id -> start seen here
        self._reported: set[tuple[int, str]] = set()  # (observer, callback) that raised
        self._taken: dict[str, None] = {}  # takeovers reported with their from_owner

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def __bool__(self) -> bool:
        return bool(self._observers)

    def _call(self, callback: str, payload: Any, execution_id: str | None) -> None:
        for observer in self._observers:
            try:
                getattr(observer, callback)(payload)
            except Exception as exc:
                key = (id(observer), callback)
                if key in self._reported:
                    continue
                self._reported.add(key)
                log.exception(
                    "observer %r failed in %s: %s (ignored; further failures are not logged)",
                    observer,
                    callback,
                    _said(exc),
                    extra=log_extra("observe", execution_id),
                )

    # -- reports from the engine and the worker ------------------------------------------

    def committed(
        self, execution_id: str, rows: list[Row], info: ExecutionInfo | None = None
    ) -> None:
        """A round of ``execution_id`` was committed with these event rows."""
        if not self._observers:
            return
        about = info or ExecutionInfo()
        docs = [event_document(row) for row in rows]
        batch = CommittedEvents(execution_id, docs, about)
        self._call("events_committed", batch, execution_id)
        crashed = False
        for row, doc in zip(rows, docs, strict=True):
            kind = row["kind"]
            if kind == "step.started":
                self._started(execution_id, row, doc, about)
            elif kind in _FINISHING and row["step_execution_id"] is not None:
                crashed = self._finished(execution_id, row, doc, about) or crashed
            elif kind in _ENDING:
                finished = ExecutionFinished(execution_id, doc["status"], row["at"], about)
                self._call("execution_finished", finished, execution_id)
        if crashed and self._taken.pop(execution_id, False) is False:
            # Recovery found attempts in flight: their holder stopped without releasing
            # the execution and this process took it over (whose lease it was is unknown).
            self._call("lease_taken_over", Takeover(execution_id, None, self.owner), execution_id)

    def claimed(self, execution_id: str, epoch: int, from_owner: str | None = None) -> None:
        """This process leased ``execution_id``; ``from_owner`` held it before, lapsed."""
        if not self._observers:
            return
        self._call("execution_claimed", Claim(execution_id, self.owner, epoch), execution_id)
        if from_owner is not None and from_owner != self.owner:
            self._taken[execution_id] = None  # its evidence in the first round is not news
            while len(self._taken) > MAX_OPEN_ATTEMPTS:
                del self._taken[next(iter(self._taken))]
            takeover = Takeover(execution_id, from_owner, self.owner)
            self._call("lease_taken_over", takeover, execution_id)

    # -- deriving attempts from events ---------------------------------------------------

    def _started(
        self, execution_id: str, row: Row, doc: dict[str, Any], info: ExecutionInfo
    ) -> None:
        self._open[row["step_execution_id"]] = row["at"]
        while len(self._open) > MAX_OPEN_ATTEMPTS:
            del self._open[next(iter(self._open))]
        attempt = StepAttempt(
            execution_id, doc["stepExecutionId"], doc["stepId"], doc["attempt"], doc["status"],
            row["at"], info=info,
        )  # fmt: skip
        self._call("step_attempt_started", attempt, execution_id)

    def _finished(
        self, execution_id: str, row: Row, doc: dict[str, Any], info: ExecutionInfo
    ) -> bool:
        """Report a finished attempt; True when recovery failed it as left in flight."""
        detail = doc["detail"] if isinstance(doc["detail"], dict) else {}
        started = self._open.pop(row["step_execution_id"], None)
        duration: float | None = None
        if started is not None:
            duration = (row["at"] - started).total_seconds()
        elif isinstance(detail.get("durationMs"), int):
            duration = detail["durationMs"] / 1000
        error = detail.get("error") if row["kind"] == "step.failed" else None
        attempt = StepAttempt(
            execution_id,
            doc["stepExecutionId"],
            doc["stepId"],
            doc["attempt"],
            doc["status"],
            row["at"],
            duration=duration,
            error=error if isinstance(error, str) else None,
            will_retry=bool(detail.get("willRetry")),
            info=info,
        )
        self._call("step_attempt_finished", attempt, execution_id)
        return is_crash(error)

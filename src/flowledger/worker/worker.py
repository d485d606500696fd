"""``flowledger worker``: claim runnable executions from the database and run them.

Any number of workers, on any number of machines, share one database. A worker
claims up to ``concurrency`` executions at a time (queued, due, or orphaned by a
dead worker whose lease lapsed), keeps their leases alive with a heartbeat, parks
executions that only wait for a distant timer, and on SIGTERM drains: running
steps finish and are recorded, then every lease is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from flowledger.errors import FlowledgerError, MissingStepTypesError, StorageError
from flowledger.logs import exception_line, log_extra
from flowledger.runtime.engine import Engine
from flowledger.runtime.leases import LeaseKeeper
from flowledger.runtime.refusals import Refusal, record_refusal
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage.base import Row
from flowledger.worker.deliveries import DeliveryDuty
from flowledger.worker.duties import DeadHoldersDuty, Duty, RetentionDuty, SchemaWatchDuty
from flowledger.worker.entity_dispatch import EntityDispatcher
from flowledger.worker.job_advancer import JobAdvancer
from flowledger.worker.schedules import Scheduler

log = logging.getLogger(__name__)
#: How long an execution whose run failed unexpectedly waits before a worker tries again:
#: 1 s, doubling with each failure in a row here, up to a minute.
RUN_ERROR_FIRST = 1.0
RUN_ERROR_MAX = 60.0
#: A failing duty tries again after 5 s, then twice as long each time, up to a minute.
DUTY_RETRY_FIRST = 5.0
DUTY_RETRY_MAX = 60.0


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 8
    lease: timedelta = timedelta(seconds=30)
    #: Executions whose next timer is further away than this are released, not held.
    park_after: float = 2.0
    #: Longest wait between two claims while idle. New work wakes the worker sooner
    #: (PostgreSQL: NOTIFY; SQLite: this process's signal, another's commit seen within
    #: storage.sqlite.CHANGE_POLL); a timer that comes due wakes nobody.
    max_idle: float = 1.0
    #: How long SIGTERM waits for running steps before giving them up to other workers.
    drain_timeout: float = 30.0
    #: Longest pause of a duty (schedules, entity events, job runs) between two looks.
    max_duty_wait: float = 1.0


class Worker:
    def __init__(self, engine: Engine, options: WorkerOptions | None = None) -> None:
        self.engine = engine
        self.options = options or WorkerOptions()
        self.active: dict[str, asyncio.Task[None]] = {}
        self.stopping = asyncio.Event()
        self._drain = asyncio.Event()
        self._changed = asyncio.Event()
        self.completed = 0
        #: Execution id → its runs that failed here in a row (their back-off).
        self._run_failures: dict[str, int] = {}
        #: The workflow versions whose missing step types were said in the log (_leave).
        self._told: set[str] = set()
        self.keeper = LeaseKeeper(
            engine.store, engine.owner, self.options.lease, engine.clock, self._lost
        )
        self.job_advancer = JobAdvancer(engine)
        self.deliveries = DeliveryDuty(engine)
        self.duties: list[Duty] = [
            Scheduler(engine),
            EntityDispatcher(engine),
            self.job_advancer,
            self.deliveries,
            DeadHoldersDuty(engine, self.wake),
            SchemaWatchDuty(engine, self._schema_changed),
        ]
        #: Why the worker stopped by itself (its build no longer fits the database), for
        #: the command to exit non-zero with; None when it was asked to stop.
        self.stopped_because: str | None = None
        #: Duties to run before their time (a job run whose workflow ended here), and
        #: the event that tells the duty loop so.
        self._duties_due: set[Duty] = set()
        self._duty_wake = asyncio.Event()
        if engine.settings.retention is not None:
            self.duties.append(RetentionDuty(engine, engine.settings.retention))

    def _run_failed(self, execution_id: str) -> float:
        """Seconds the execution waits after its run failed here, by failures in a row."""
        failures = self._run_failures.get(execution_id, 0) + 1
        if len(self._run_failures) > 10_000:  # bounded: a few executions in trouble
            self._run_failures.clear()
        self._run_failures[execution_id] = failures
        return _doubling(failures, RUN_ERROR_FIRST, RUN_ERROR_MAX)

    def stop(self) -> None:
        """Ask the worker to drain and exit (what SIGTERM and Ctrl-C do)."""
        self.stopping.set()
        self._changed.set()

    def wake(self) -> None:
        """Claim again now: work became claimable in this process (``App.on_work(worker.wake)``;
        SQLite has no notification between processes, so its idle workers would poll)."""
        self._changed.set()

    def run_duty_now(self, duty: Duty) -> None:
        """Run ``duty`` at once rather than at the time it asked for."""
        self._duties_due.add(duty)
        self._duty_wake.set()

    def _schema_changed(self, problem: str) -> None:
        if self.stopped_because is None:
            log.error("stopping: %s", problem, extra=log_extra("schema_changed", problem=problem))
            self.stopped_because = problem
        self.stop()

    def _lost(self, execution_id: str) -> None:
        task = self.active.get(execution_id)
        if task is not None:
            task.cancel()

    async def run(self) -> None:
        store = self.engine.store
        idle = 0.05
        backoff = 1.0
        # Engine.close stops this worker and waits for it, before closing the store.
        ended = self.engine.worker_started(self.stop)
        self.keeper.start()
        duties = asyncio.create_task(self._run_duties(), name="worker duties")
        try:
            while not self.stopping.is_set():
                free = self.options.concurrency - len(self.active)
                claimed: list[Row] = []
                # Cleared before the claim, not after it: a wake while the claim runs
                # (work committed just after the claim's query) must not be lost.
                self._changed.clear()
                if len(self._told) < len(self.engine.unrunnable):
                    await self._tell_unrunnable()  # found by a start or a show in this process
                if free > 0:
                    # Nothing to release here: an execution's last round released its lease.
                    try:
                        claimed = await store.claim_execution_rows(
                            self.engine.owner,
                            free,
                            self.options.lease,
                            skip=tuple(self.engine.unrunnable),
                        )
                    except Exception as exc:  # database down or locked: back off, keep going
                        log.error(
                            "cannot claim work (%s); retrying in %.0fs",
                            exc,
                            backoff,
                            extra=log_extra("claim"),
                        )
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 30.0)
                        continue
                    backoff = 1.0
                for row in claimed:
                    execution_id, epoch = row["id"], int(row["lease_epoch"])
                    # Registered with the engine in this turn, no await since the claim:
                    # a settle here joins the run (None: a drive here runs it already).
                    task = self.engine.take_up(
                        execution_id, epoch, partial(self._run_one, row, epoch)
                    )
                    if task is None:
                        continue
                    self.keeper.hold(execution_id, epoch)
                    # The store does not say whose lapsed lease a claim took: takeovers
                    # show up as the attempts recovery finds in flight (runtime.observer).
                    self.engine.observers.claimed(execution_id, epoch)
                    self.active[execution_id] = task
                if claimed:
                    idle = 0.05
                    await asyncio.sleep(0)
                    continue
                await self._idle(idle if free > 0 else None)
                idle = min(idle * 2, self.options.max_idle)
            await self._drain_all()
        finally:
            duties.cancel()
            await asyncio.gather(duties, return_exceptions=True)
            await self.deliveries.stop()  # its attempts run on their own: hand them back
            await self.keeper.stop()
            ended()

    async def _run_duties(self) -> None:
        """Schedules, entity events and job runs, each at the pace it asks for."""
        loop = asyncio.get_running_loop()
        next_run = dict.fromkeys(range(len(self.duties)), 0.0)
        failures = dict.fromkeys(range(len(self.duties)), 0)  # in a row, per duty
        while True:
            # Cleared before the duties run: a duty made due meanwhile runs next round.
            self._duty_wake.clear()
            due, self._duties_due = self._duties_due, set()
            now = loop.time()
            for index, duty in enumerate(self.duties):
                if next_run[index] > now and duty not in due:
                    continue
                try:
                    delay = await duty.run_once()
                except Exception as exc:  # a duty's failure must not stop the worker or the others
                    # Back off 5 s, doubling to a minute (a database down fails every duty
                    # at once); the traceback once per streak, then one line each time; a
                    # database that does not answer (StorageError) in a line from the first.
                    failures[index] += 1
                    delay = _doubling(failures[index], DUTY_RETRY_FIRST, DUTY_RETRY_MAX)
                    extra = log_extra("run_duty", duty=duty.name, failures=failures[index])
                    if failures[index] == 1 and not isinstance(exc, StorageError):
                        log.exception(
                            "worker duty %s failed; trying again in %gs",
                            duty.name,
                            delay,
                            extra=extra,
                        )
                    elif failures[index] == 1:
                        log.error(
                            "worker duty %s failed (%s); trying again in %gs",
                            duty.name, exception_line(exc), delay, extra=extra,
                        )  # fmt: skip
                    else:
                        log.error(
                            "worker duty %s failed again (%d in a row: %s); trying again in %gs",
                            duty.name, failures[index], exception_line(exc), delay, extra=extra,
                        )  # fmt: skip
                    next_run[index] = loop.time() + delay
                    continue
                if failures[index]:
                    log.info(
                        "worker duty %s works again after %d failures",
                        duty.name,
                        failures[index],
                        extra=log_extra("run_duty", duty=duty.name),
                    )
                    failures[index] = 0
                if not duty.paced:
                    delay = min(delay, self.options.max_duty_wait)
                next_run[index] = loop.time() + max(0.05, delay)
            pause = max(0.0, min(next_run.values()) - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._duty_wake.wait(), pause)

    async def _idle(self, timeout: float | None) -> None:
        """Wait for a notification, a finished execution, a stop, or the timeout (a wake
        since the last claim ends it at once)."""
        waiters: list[asyncio.Task[object]] = [asyncio.create_task(self._changed.wait())]
        if timeout is not None:
            waiting = self.engine.store.wait_for_work(timeout, skip=tuple(self.engine.unrunnable))
            waiters.append(asyncio.create_task(waiting))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _run_one(self, row: Row, epoch: int) -> None:
        """Run a claimed execution; ``row`` is as the claim left it (no read needed)."""
        execution_id = row["id"]
        parked_until = None
        terminal = failed = False
        try:
            workflow = await self.engine.workflow_for_version(row["workflow_version_id"])
            _log_start(row)
            began = self.engine.clock.now()
            status, parked_until = await self.engine.run_owned(
                execution_id,
                park_after=self.options.park_after,
                drain=self._drain,
                group_commits=self.options.concurrency > 1,
                row=row,
                on_release=lambda: self.keeper.drop(execution_id, epoch),
                workflow=workflow,
            )
            terminal = status.terminal
            self._run_failures.pop(execution_id, None)
            if terminal:
                self.completed += 1
            waits = status == ExecutionStatus.AWAITING_USER_INPUT
            if row.get("job_run_id") and (terminal or waits):
                self.run_duty_now(self.job_advancer)  # its job run's next workflow, or status
            _log_end(row, str(status), began, self.engine.clock.now(), parked_until)
        except asyncio.CancelledError:
            # Stopped midway: claimable at once, whatever its status. An AwaitingUserInput
            # one (a branch moving on while a person is waited for) is claimed only once its
            # wake_at has come: released with none, nobody would take it up again.
            parked_until = self.engine.clock.now()
            log.warning(
                "stopped running execution %s", execution_id, extra=log_extra("stop", execution_id)
            )
        except MissingStepTypesError as exc:
            if row["workflow_version_id"] in self.engine.unrunnable:  # claims skip it now
                parked_until = await self._leave(row, exc)
            else:  # more such versions than a claim leaves out (MOST_SKIPPED): as below
                parked_until, failed = self._park_failed(execution_id, exc), True
        except Exception as exc:
            parked_until, failed = self._park_failed(execution_id, exc), True
        finally:
            self.keeper.drop(execution_id, epoch)
            self.active.pop(execution_id, None)
            if not terminal:  # a terminal one's last round released its lease
                with contextlib.suppress(Exception):
                    await self.engine.store.release_lease(
                        execution_id, epoch, parked_until, failed=failed
                    )
                    if parked_until is None or parked_until <= self.engine.clock.now():
                        await self.engine.store.notify_work()  # drained: let others take it
            self._changed.set()

    def _park_failed(self, execution_id: str, exc: Exception) -> datetime:
        """When an execution whose run failed here is tried again, said in the log.

        Parked a while, not handed back at once: every worker would take it again and
        fail the same way in a tight loop (a missing artifact file, a plugin whose input
        model changed since the push)."""
        wait = self._run_failed(execution_id)
        known = isinstance(exc, FlowledgerError)  # said in words; else a traceback
        (log.error if known else log.exception)(
            "execution %s: %s; it is tried again in %gs",
            execution_id,
            exc if known else f"crashed the runner ({type(exc).__name__})",
            wait,
            extra=log_extra("run", execution_id),
        )
        return self.engine.clock.now() + timedelta(seconds=wait)

    async def _leave(self, row: Row, exc: MissingStepTypesError) -> datetime | None:
        """Hand back an execution whose workflow this process lacks the step types of,
        untouched and unparked: its claims skip that version from now on, so a worker
        that has the plugins takes it at once (before, it was parked here for up to a
        minute at a time, and the worker that could run it waited). Said once per version
        in a warning, since nobody may have them: then it stays queued.

        Returns the ``wake_at`` to release it with: none (claimable at once), except for
        an execution waiting for a person whose time had come (input arrived, or its due
        time), which is claimable only with a ``wake_at`` that has come: now."""
        if row["workflow_version_id"] not in self._told:
            await self._tell(row["workflow_version_id"], exc, row["id"])
        waits = row["runtime_status"] == ExecutionStatus.AWAITING_USER_INPUT
        return self.engine.clock.now() if waits else None

    async def _tell_unrunnable(self) -> None:
        """Say each version this process found it cannot run before any of its executions
        was claimed here (a ``serve`` node compiles a workflow it starts or shows first,
        and its claims then skip the executions without a word)."""
        for version_id, exc in list(self.engine.unrunnable.items()):
            if version_id not in self._told:
                await self._tell(version_id, exc, None)

    async def _tell(
        self, version_id: str, exc: MissingStepTypesError, execution_id: str | None
    ) -> None:
        """Once per version: its executions are left to workers with its plugins. Said in
        the log and kept in the database, where ``executions show`` and ``watch`` read it."""
        self._told.add(version_id)
        refusal = Refusal(tuple(exc.missing), self.engine.owner, self.engine.clock.now())
        try:
            await record_refusal(self.engine.store, version_id, refusal)
        except StorageError as failed:  # the log below still says it
            log.warning(
                "could not record that workflow %s is left to other workers: %s",
                exc.workflow,
                failed,
                extra=log_extra("leave_execution", execution_id, workflow=exc.workflow),
            )
        log.warning(
            "workflow %s needs step types this process has not loaded (%s): its "
            "executions are left to a worker that has them (started with --plugin "
            "MODULE); without one they stay queued",
            exc.workflow,
            ", ".join(exc.missing),
            extra=log_extra("leave_execution", execution_id, workflow=exc.workflow),
        )

    async def _drain_all(self) -> None:
        if not self.active:
            return
        log.info("draining %d executions", len(self.active), extra=log_extra("drain"))
        self._drain.set()
        tasks = list(self.active.values())
        _, pending = await asyncio.wait(tasks, timeout=self.options.drain_timeout)
        for task in pending:  # their in-flight steps will be re-run by the next owner
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _log_start(row: Row) -> None:
    log.info(
        "execution %s of %s: running (%s)",
        row["id"],
        row["workflow_name"],
        row["runtime_status"],
        extra=log_extra(
            "run_execution", row["id"], workflow=row["workflow_name"], status="running"
        ),
    )


def _log_end(
    row: Row, status: str, began: datetime, now: datetime, parked_until: datetime | None
) -> None:
    """One line per execution the worker lets go: its status and how long it has run
    since it started (whichever process started it; this one when it was queued)."""
    seconds = (now - (row["started_at"] or began)).total_seconds()
    took = f" after {seconds:.3f}s"
    parked = f", parked until {parked_until.isoformat()}" if parked_until else ""
    log.info(
        "execution %s of %s: %s%s%s",
        row["id"],
        row["workflow_name"],
        status,
        took,
        parked,
        extra=log_extra(
            "run_execution",
            row["id"],
            workflow=row["workflow_name"],
            status=status,
            duration_ms=int(seconds * 1000),
        ),
    )


def _doubling(failures: int, first: float, most: float) -> float:
    """Seconds to wait after ``failures`` in a row: ``first``, doubling, at most ``most``."""
    return float(min(first * 2 ** (failures - 1), most))

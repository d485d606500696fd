"""Job runs: several workflows run in order, each as its own execution linked by jobRunId.

Creating a job run resolves and checks every workflow and input first, so a bad
job file fails before anything runs. Advancing is one idempotent step, taken by
the holder of the job run's lease: record the status, and start the next item
with the trigger key ``job:<id>:<index>`` (a second start of the same item finds
the first execution). A foreground :meth:`JobRuns.drive` runs each execution in
its own process; a worker's JobAdvancer takes over job runs nobody drives (their
creator was killed, or created them for the workers), and workers run the
executions. A failed job run is resumed by retrying its failed execution, which opens
it again (:meth:`JobRuns.reopened_for_retry`, around every retry); the advancers then
carry it on as before. See job_state.py for what each status means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from flowledger.codec import same_json
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.jobs import JobFile
from flowledger.errors import (
    ConflictError,
    DefinitionError,
    InputError,
    JobRunCancelledError,
    LeaseLostError,
    NotFoundError,
    NotPushedError,
    Problem,
    StorageError,
)
from flowledger.jsonvalues import encodable_text
from flowledger.logs import log_extra
from flowledger.runtime.creation import Lineage, validate_input
from flowledger.runtime.engine import Engine
from flowledger.runtime.job_state import (
    JOB_RUN_FORMAT_VERSION,
    Progress,
    creator,
    current,
    items_of,
    job_run_document,
    runs_by_index,
    trigger_key,
)
from flowledger.runtime.orphans import owner_is_dead
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage import Row

log = logging.getLogger(__name__)
#: How many times cancel looks again at a job run that moved while it was cancelled (a
#: workflow ended or started meanwhile): each look follows such a move, never a wait.
CANCEL_LOOKS = 40

_FILE_SUFFIXES = (".yaml", ".yml", ".json")
RunCallback = Callable[[dict[str, Any]], None]


class JobRuns:
    """Create, advance, drive and read job runs on one engine."""

    def __init__(self, engine: Engine, *, poll: float = 0.25) -> None:
        self.engine = engine
        #: How often a process waiting on another process's execution looks again.
        self.poll = poll

    # -- creation -----------------------------------------------------------------------------

    async def create(
        self,
        job: JobFile,
        *,
        created_by: str = "python",
        hold: bool = False,
        idempotency_key: str | None = None,
    ) -> str:
        """Check and store a job run; return its id. With ``hold`` it is created leased to
        this engine (call :meth:`drive` next). Without, its first workflow starts here and
        now, which wakes the workers as any start does; they run it, and the worker that
        ends each workflow starts the next (the workers' JobAdvancer).

        With ``idempotency_key`` (never with ``hold``) a job run is created once per key:
        a create with a key used before stores nothing and returns the id of the job run
        it created; one whose job differs (its name, ``continue_on_failure``, or a
        workflow's name or input) is refused (ConflictError)."""
        resolved = await self._resolve(job)
        items = []
        for compiled, arguments in resolved:  # stored only once every item checked out
            version = await self.engine.register(compiled)
            items.append(
                {
                    "workflowVersionId": version.id,
                    "workflowName": compiled.name,
                    "workflowVersion": version.version,
                    "input": arguments,
                }
            )
        engine = self.engine
        now = engine.clock.now()
        job_run_id = str(uuid.uuid4())
        row: Row = {
            "id": job_run_id,
            "name": job.spec.name,
            "status": str(ExecutionStatus.NOT_STARTED),
            "continue_on_failure": job.spec.continue_on_failure,
            "items": json.dumps(items, ensure_ascii=False),
            "format_version": JOB_RUN_FORMAT_VERSION,
            "created_at": now,
            "started_at": None,
            "completed_at": None,
            "created_by": created_by,
            "lease_owner": engine.owner if hold else None,
            "lease_expires_at": now + engine.lease if hold else None,
            "idempotency_key": idempotency_key,
        }
        stored = await engine.store.create_job_run(row)
        if stored != job_run_id:
            return await self._created_before(stored, row, idempotency_key or "")
        log.info(
            "job run %s (%s) created with %d workflows",
            job_run_id,
            job.spec.name,
            len(items),
            extra=log_extra("create_job_run", job_run_id=job_run_id),
        )
        if not hold:
            try:
                await self.advance(job_run_id)
            except Exception:  # the run is stored: the workers' JobAdvancer starts it
                log.exception(
                    "job run %s: cannot start its first workflow here; the workers will",
                    job_run_id,
                    extra=log_extra("advance_job_run", job_run_id=job_run_id),
                )
        return job_run_id

    async def _created_before(self, job_run_id: str, row: Row, key: str) -> str:
        """The job run ``key`` created, when ``row`` asks for the same job; else
        ConflictError. A workflow's version is not compared: one pushed since the first
        create is still the same request, retried."""
        earlier = await self.engine.store.get_job_run(job_run_id)
        if earlier is None:  # pruned between the insert and this read
            raise ConflictError(f"the idempotency key {key!r} was used by a job run just removed")

        def asked(r: Row) -> Any:
            items = [[i["workflowName"], i["input"]] for i in json.loads(r["items"])]
            return [r["name"], bool(r["continue_on_failure"]), items]

        if not same_json(asked(earlier), asked(row)):  # JSON's true is not 1
            raise ConflictError(
                f"the idempotency key {key!r} created job run {job_run_id} of another job "
                "(its name, continue_on_failure, or a workflow or its input differ); use a "
                "new key for a new job run"
            )
        return job_run_id

    async def check_files(self, job: JobFile, *, stored: bool = False) -> int:
        """Check a job file (``flowledger validate``): every workflow it names by file is
        compiled and its input checked; pushed names too with ``stored`` (which reads the
        database), else when the job runs. Returns how many items were checked;
        DefinitionError lists problems."""
        return len(await self._resolve(job, stored=stored))

    async def _resolve(
        self, job: JobFile, *, stored: bool = True
    ) -> list[tuple[CompiledWorkflow, dict[str, Any]]]:
        problems: list[Problem] = []
        resolved = []
        for index, item in enumerate(job.spec.workflows):
            where = ("workflows", index)
            if not stored and not self._is_file(job, item.workflow):
                continue
            try:
                compiled = await self._find(job, item.workflow)
            except DefinitionError as exc:
                # A file named by several items has its problems listed once.
                problems.extend(p for p in exc.problems if p not in problems)
                message = f"{item.workflow} is not a valid workflow (its problems are above)"
                problems.append(job.problem(message, (*where, "workflow")))
                continue
            except NotFoundError as exc:
                problems.append(job.problem(str(exc), (*where, "workflow")))
                continue
            try:
                validate_input(compiled, item.input)
            except InputError as exc:
                problems.append(job.problem(str(exc), (*where, "input")))
                continue
            resolved.append((compiled, dict(item.input)))
        if problems:
            raise DefinitionError(problems)
        return resolved

    @staticmethod
    def _is_file(job: JobFile, reference: str) -> bool:
        return job.files and (reference.endswith(_FILE_SUFFIXES) or Path(reference).is_file())

    async def _find(self, job: JobFile, reference: str) -> CompiledWorkflow:
        """A file next to the job file, else in the current folder, else a pushed name;
        only a pushed name when the job may not name files (nothing on disk is looked at,
        so neither a file's content nor its existence shows)."""
        if not job.files:
            return await self._pushed(reference)
        if job.folder is not None and (job.folder / reference).is_file():
            return self.engine.load(job.folder / reference)
        if Path(reference).is_file():
            return self.engine.load(reference)
        if reference.endswith(_FILE_SUFFIXES):
            places = "the current folder"
            if job.folder is not None:
                places = f"{job.folder} (the job file's folder) or in {places}"
            raise NotFoundError(f"there is no definition file {reference} in {places}")
        return await self.engine.find_workflow(reference, allow_file=True)

    async def _pushed(self, name: str) -> CompiledWorkflow:
        try:
            version = await self.engine.resolve_version(name, pushed_only=True)
        except NotPushedError:
            raise
        except NotFoundError as exc:
            if name.endswith(_FILE_SUFFIXES) or "/" in name:  # meant as a file: say why not
                raise NotFoundError(
                    f"{exc}; a job run sent as text names pushed workflows, never files"
                ) from None
            raise
        return await self.engine.workflow_for_version(version.id)

    # -- advancing ----------------------------------------------------------------------------

    async def advance(self, job_run_id: str, *, held: bool = False) -> bool:
        """One step for a job run nobody drives; True when it started an execution.
        ``held``: this engine holds the job run's lease already (it is let go here).

        Safe from any number of workers at once: the lease picks one, and the trigger
        keys keep an item from starting twice even when a lease lapsed meanwhile.
        """
        store, owner = self.engine.store, self.engine.owner
        started = False
        while True:
            if not held:
                row = await self._row(job_run_id)
                dead = row["lease_owner"] if owner_is_dead(row["lease_owner"]) else None
                if not await store.acquire_job_run(
                    job_run_id, owner, self.engine.lease, steal_from=dead
                ):
                    return started
            held = False
            try:
                state = await self._step(job_run_id, hold=False)
            finally:
                await store.release_job_run(job_run_id, owner)
            # A started item woke the workers as it was created (Store.create_execution).
            started = started or (state.waiting_on is not None and state.next_index is not None)
            # The item may have ended while this held the lease: the worker that ended it
            # found the job run taken and left it, and nobody else would look before the
            # advancer's next round (under load, a started item ran to its end before
            # the start let go of the job run).
            if state.waiting_on is None or not await self._ended(state.waiting_on):
                return started

    async def _ended(self, execution_id: str) -> bool:
        row = await self.engine.store.get_execution(execution_id)
        return row is not None and ExecutionStatus(row["runtime_status"]).terminal

    async def _step(self, job_run_id: str, *, hold: bool) -> Progress:
        """Record where the run stands and start its next item (this process holds the lease).

        The returned progress names the execution to wait for; ``next_index`` stays set
        when this step started it.
        """
        engine = self.engine
        row = await self._row(job_run_id)
        executions = await engine.store.job_run_executions(job_run_id)
        state = current(row, executions)
        index = state.next_index
        ends = state.status.terminal
        recorded = await engine.store.record_job_run_status(
            job_run_id,
            engine.owner,
            str(ExecutionStatus.IN_PROGRESS if index is not None else state.status),
            started=index is not None,
            completed=ends,
            failed=[e["id"] for e in executions if e["runtime_status"] == ExecutionStatus.FAILED]
            if ends
            else (),
        )
        if ends and not recorded and not ExecutionStatus(row["status"]).terminal:
            # Refused as untrue by now: its failed workflow was retried since it was read.
            fresh = current(
                await self._row(job_run_id), await engine.store.job_run_executions(job_run_id)
            )
            if not fresh.status.terminal:
                return Progress(fresh.status, waiting_on=fresh.waiting_on)
        if not recorded or index is None:
            if state.status.terminal and recorded:
                log.info(
                    "job run %s ended %s",
                    job_run_id,
                    state.status,
                    extra=log_extra("end_job_run", job_run_id=job_run_id),
                )
            return Progress(state.status, waiting_on=state.waiting_on)
        item = items_of(row)[index]
        workflow = await engine.workflow_for_version(item["workflowVersionId"])
        try:
            execution_id = await engine.start(
                workflow,
                item["input"],
                created_by=creator(job_run_id),
                hold=hold,
                lineage=Lineage(job_run_id=job_run_id, trigger_key=trigger_key(job_run_id, index)),
            )
        except JobRunCancelledError:  # since the record above: it ends here, nothing started
            log.info(
                "job run %s was cancelled before its workflow %d started",
                job_run_id,
                index + 1,
                extra=log_extra("advance_job_run", job_run_id=job_run_id),
            )
            return Progress(ExecutionStatus.CANCELLED)
        log.info(
            "job run %s: started workflow %d (%s) as execution %s",
            job_run_id,
            index + 1,  # counted from 1, as `jobs show` lists them
            item["workflowName"],
            execution_id,
            extra=log_extra("advance_job_run", execution_id, job_run_id=job_run_id),
        )
        return Progress(ExecutionStatus.IN_PROGRESS, next_index=index, waiting_on=execution_id)

    # -- driving in the foreground ------------------------------------------------------------

    async def drive(self, job_run_id: str, *, on_run: RunCallback | None = None) -> dict[str, Any]:
        """Run the job run here until it ends or waits for a person's input; return its
        document. ``on_run`` is called with each run entry as its execution ends.

        Executions that another process holds (a worker that took over) are waited for;
        another process advancing the run meanwhile is tolerated.
        """
        engine = self.engine
        reported: set[int] = set()
        keeper = asyncio.create_task(self._keep_lease(job_run_id))
        try:
            while True:
                await self._report(job_run_id, reported, on_run)  # before the next one starts
                row = await self._row(job_run_id)
                dead = row["lease_owner"] if owner_is_dead(row["lease_owner"]) else None
                held = await engine.store.acquire_job_run(
                    job_run_id, engine.owner, engine.lease, steal_from=dead
                )
                if held:
                    state = await self._step(job_run_id, hold=True)
                else:  # another process advances it: follow along
                    state = current(row, await engine.store.job_run_executions(job_run_id))
                if state.status.terminal or state.status == ExecutionStatus.AWAITING_USER_INPUT:
                    await self._report(job_run_id, reported, on_run)
                    break
                if state.waiting_on is None:
                    await asyncio.sleep(self.poll)
                else:  # the next round records how it ended, or that it awaits input
                    await self._finish(state.waiting_on)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            with contextlib.suppress(StorageError):
                await engine.store.release_job_run(job_run_id, engine.owner)
        return await self.get(job_run_id)

    async def _finish(self, execution_id: str) -> ExecutionStatus:
        """Run the execution here, or wait while another process runs it; its status once
        it ended or waits for input."""
        try:
            done = await self.engine.drive(execution_id, document=False)
            return ExecutionStatus(done["runtimeStatus"])
        except LeaseLostError:
            log.info(
                "execution %s was taken over by another process; waiting",
                execution_id,
                extra=log_extra("await_execution", execution_id),
            )
        except StorageError:
            # Held elsewhere (a database that is down fails the reads below as well).
            await asyncio.sleep(self.poll)
        while True:
            row = await self.engine.store.get_execution(execution_id)
            if row is None:
                raise NotFoundError(f"execution {execution_id} of a job run disappeared")
            status = ExecutionStatus(row["runtime_status"])
            if status.terminal or status == ExecutionStatus.AWAITING_USER_INPUT:
                return status
            expires = row["lease_expires_at"]
            if row["lease_owner"] is None or (expires and expires < self.engine.clock.now()):
                return status  # nobody runs it (its runner died): the next round drives it
            await asyncio.sleep(self.poll)

    async def _keep_lease(self, job_run_id: str) -> None:
        """Renew the lease while a long execution runs, so no worker advances the run."""
        engine = self.engine
        while True:
            await asyncio.sleep(engine.lease.total_seconds() / 3)
            try:
                await engine.store.acquire_job_run(job_run_id, engine.owner, engine.lease)
            except StorageError as exc:  # the next round of drive() tries again
                log.warning(
                    "cannot renew the lease of job run %s: %s",
                    job_run_id,
                    exc,
                    extra=log_extra("renew_lease", job_run_id=job_run_id),
                )

    async def _report(
        self, job_run_id: str, reported: set[int], on_run: RunCallback | None
    ) -> None:
        if on_run is None:
            return
        for run in (await self.get(job_run_id))["runs"]:
            status = run["runtimeStatus"]
            if run["index"] not in reported and status and ExecutionStatus(status).terminal:
                reported.add(run["index"])
                on_run(run)

    # -- cancelling ---------------------------------------------------------------------------

    async def cancel(
        self, job_run_id: str, *, by: str = "python", reason: str = "the job run was cancelled"
    ) -> str | None:
        """Cancel the workflow the job run is on; a cancelled workflow ends the job run
        (``Cancelled``, even with ``continue_on_failure``). Returns that execution's id;
        None when the job run was between two workflows (or had started none): it is
        recorded ``Cancelled`` at once, and its next workflow never starts.

        Nothing is waited for: before, a cancel between two workflows looked again every
        ``poll`` seconds (up to 40 times) until the next one had started, and cancelled
        that; the job run had gone on meanwhile."""
        store = self.engine.store
        for _ in range(CANCEL_LOOKS):
            row = await self._row(job_run_id)
            executions = await store.job_run_executions(job_run_id)
            state = current(row, executions)
            if state.status.terminal:
                raise ConflictError(f"job run {job_run_id} already ended: {state.status}")
            if state.waiting_on is not None:
                with contextlib.suppress(ConflictError):  # it ended meanwhile: look again
                    await self.engine.cancel(state.waiting_on, by=by, reason=reason)
                    return state.waiting_on
            elif await store.cancel_job_run_between(job_run_id, len(executions)):
                log.info(
                    "job run %s cancelled by %s between two workflows: %s",
                    job_run_id,
                    by,
                    reason,
                    extra=log_extra("cancel_job_run", job_run_id=job_run_id),
                )
                return None
            # A workflow started or ended meanwhile: look again.
        raise ConflictError(
            f"job run {job_run_id} kept moving on while it was being cancelled; see "
            "flowledger jobs show, and cancel it again"
        )

    # -- retrying -----------------------------------------------------------------------------

    async def retry(self, job_run_id: str, *, by: str = "python") -> list[str]:
        """Resume a ``Failed`` job run: retry each of its failed workflows' executions in
        place (:meth:`Engine.retry`, which opens the job run again), so it carries on from
        there once they complete, as a retry from ``executions retry`` does. Returns the
        retried executions' ids, in item order. ConflictError when it did not fail."""
        store = self.engine.store
        row = await self._row(job_run_id)
        executions = await store.job_run_executions(job_run_id)
        status = current(row, executions).status
        if status != ExecutionStatus.FAILED:
            why = (
                "a cancelled job run stays stopped; run the job file again"
                if status == ExecutionStatus.CANCELLED
                else "only a Failed job run is retried"
            )
            raise ConflictError(f"job run {job_run_id} is {status}: {why}")
        failed = [
            run["id"]
            for _, run in sorted(runs_by_index(job_run_id, executions).items())
            if run["runtime_status"] == ExecutionStatus.FAILED
        ]
        for execution_id in failed:
            await self.retry_execution(execution_id, by=by)
        log.info(
            "job run %s retried by %s: %d failed workflows run again",
            job_run_id,
            by,
            len(failed),
            extra=log_extra("retry_job_run", job_run_id=job_run_id),
        )
        return failed

    async def retry_execution(self, execution_id: str, *, by: str) -> list[str]:
        """:meth:`Engine.retry`, and the execution's job run, if it ended Failed with it,
        open again (every retry of an execution goes through here: the application
        layer's, and :meth:`retry_failed`'s). Decision: here, not in the engine, which job
        runs are built on (runtime helpers never import their owner)."""
        async with self.reopened_for_retry(execution_id):
            return await self.engine.retry(execution_id, by=by)

    @contextlib.asynccontextmanager
    async def reopened_for_retry(self, execution_id: str) -> AsyncIterator[None]:
        """Around the retry of an execution (:meth:`retry_execution`): when it
        is a job run's failed workflow, that job run is open (``InProgress``) once the
        retry committed, so the advancer that sees the execution complete starts the next
        workflow.

        A job run recorded ``Failed`` is opened before the retry commits, not after: a
        crash in between would leave the retried execution under a job run that never
        goes on (the tour's bug); it stays leased here meanwhile, so no advancer records
        it ``Failed`` again from the old execution. One not recorded yet (its advancer is
        at it right now) is looked at again after the commit: an end recorded from what
        was read before it is opened again (ends recorded after it are refused, the store
        checks them against the executions). A refused retry gives the job run back to
        :meth:`advance`, which records where it really stands."""
        engine, store = self.engine, self.engine.store
        row = await store.get_execution(execution_id)
        job_run_id = row.get("job_run_id") if row is not None else None
        if not job_run_id or row is None or row["runtime_status"] != ExecutionStatus.FAILED:
            yield
            return
        job_run = await self._row(job_run_id)
        status = ExecutionStatus(job_run["status"])
        if status.terminal and status != ExecutionStatus.FAILED:  # cancelled: it stays so
            yield
            return
        held = False
        if status == ExecutionStatus.FAILED:
            dead = job_run["lease_owner"] if owner_is_dead(job_run["lease_owner"]) else None
            held = await store.reopen_job_run(
                job_run_id, engine.owner, engine.lease, steal_from=dead
            )
            if not held and (await self._row(job_run_id))["status"] == ExecutionStatus.FAILED:
                raise ConflictError(
                    f"job run {job_run_id} of execution {execution_id} is being changed "
                    "by another process right now; retry again"
                )
            if held:
                self._log_reopened(job_run_id, execution_id)
        retried = False
        try:
            yield
            retried = True
        finally:
            if held and not retried:
                # Recorded under the lease the reopen took, and let go after: let go
                # first, another process's advancer could take it in between, and the
                # refused retry returned with the job run InProgress, held elsewhere
                # (a flaky test on PostgreSQL under load).
                await self._advance_quietly(job_run_id, held=True)
            elif held:
                with contextlib.suppress(StorageError):  # a lease lapses by itself
                    await store.release_job_run(job_run_id, engine.owner)
            elif retried and await store.reopen_job_run(job_run_id):
                # Its advancer recorded the old failure while the retry committed.
                self._log_reopened(job_run_id, execution_id)
                await self._advance_quietly(job_run_id)  # the execution may have ended

    def _log_reopened(self, job_run_id: str, execution_id: str) -> None:
        log.info(
            "job run %s is open again: its failed execution %s is retried",
            job_run_id,
            execution_id,
            extra=log_extra("retry_job_run", execution_id, job_run_id=job_run_id),
        )

    async def _advance_quietly(self, job_run_id: str, *, held: bool = False) -> None:
        try:
            await self.advance(job_run_id, held=held)
        except Exception:  # the workers' advancer records it on its next look
            log.exception(
                "job run %s: cannot record where it stands after a retry",
                job_run_id,
                extra=log_extra("advance_job_run", job_run_id=job_run_id),
            )

    # -- reading ------------------------------------------------------------------------------

    async def get(self, job_run_id: str) -> dict[str, Any]:
        row = await self._row(job_run_id)
        return job_run_document(row, await self.engine.store.job_run_executions(job_run_id))

    async def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Job runs, newest first."""
        store = self.engine.store
        return [
            job_run_document(row, await store.job_run_executions(row["id"]))
            for row in await store.list_job_runs(limit)
        ]

    async def resolve_id(self, prefix: str) -> str:
        """A full job-run id from a unique prefix of it."""
        found = await self.engine.store.find_job_runs(prefix) if encodable_text(prefix) else []
        if len(found) == 1:
            return found[0]
        if not found:
            raise NotFoundError(f"no job run has an id starting with {prefix!r}")
        raise NotFoundError(f"several job runs have ids starting with {prefix!r}; give more")

    async def execution_ids(self, job_run_id: str) -> list[str]:
        """The executions of a job run, in item order."""
        rows = await self.engine.store.job_run_executions(job_run_id)
        return [row["id"] for _, row in sorted(runs_by_index(job_run_id, rows).items())]

    async def _row(self, job_run_id: str) -> Row:
        row = await self.engine.store.get_job_run(job_run_id)
        if row is None:
            raise NotFoundError(f"job run {job_run_id} does not exist")
        return row

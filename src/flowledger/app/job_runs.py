"""Job runs: several workflows run in order, each as its own execution (SPEC §7)."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from typing import Any, cast

from flowledger.app.cursors import CursorCodec
from flowledger.app.limits import check_no_nul, check_text_size, page_size
from flowledger.app.models import (
    CancelJobRun,
    CreateJobRun,
    DriveJobRun,
    GetJobRun,
    ListJobRuns,
    ResolveId,
    RetryJobRun,
)
from flowledger.app.paging import keyset_page
from flowledger.app.results import JobRunDocument, JobRunItem, Page
from flowledger.config import Limits
from flowledger.definition.jobs import JobFile, load_job_file, parse_job_text
from flowledger.runtime.engine import Engine
from flowledger.runtime.job_runs import JobRuns as JobRunner
from flowledger.runtime.job_state import job_run_document

RunCallback = Callable[[JobRunItem], None]


class JobRunsApp:
    """The job-run operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(
        self,
        engine: Engine,
        wake: Callable[[], Awaitable[None]],
        codec: Callable[[], Awaitable[CursorCodec]],
        limits: Limits | None = None,
    ) -> None:
        self._engine = engine
        self._codec = codec
        self._limits = limits or Limits()
        self._wake = wake
        self._runner = JobRunner(engine)

    async def create(self, request: CreateJobRun) -> JobRunDocument:
        """Check a job-run file and store the job run (every item checked first). Without
        ``hold`` its first workflow starts now and the workers run it (they are woken, as
        for any start); with it, :meth:`drive` it here. With ``idempotency_key``, once per
        key: the job run that key created (ConflictError for another job)."""
        job = self._load(request)  # a bad file fails before anything is stored
        job_run_id = await self._runner.create(
            job,
            created_by=request.created_by,
            hold=request.hold,
            idempotency_key=request.idempotency_key,
        )
        if not request.hold:
            await self._wake()
        return await self.get(GetJobRun(id=job_run_id))

    def _load(self, request: CreateJobRun) -> JobFile:
        if request.file is not None:  # read_files: the model refuses a file without it
            return load_job_file(request.file)
        text = request.text or ""
        check_text_size(text, self._limits.max_definition, "the job-run document", "max_definition")
        # Whether its workflows may be files is the caller's standing, never the names'
        # look: the runtime then resolves each as a pushed name only.
        job = parse_job_text(text, "<request>", files=request.read_files)
        check_no_nul(job.spec, ())  # a JSON text may spell one as \u0000
        return job

    async def drive(
        self, request: DriveJobRun, *, on_run: RunCallback | None = None
    ) -> JobRunDocument:
        """Run a job run this process holds to its end (or until one waits for people);
        ``on_run`` sees each workflow's run as it ends."""
        callback = cast(Callable[[dict[str, Any]], None] | None, on_run)
        return cast(JobRunDocument, await self._runner.drive(request.id, on_run=callback))

    async def resolve_id(self, request: ResolveId) -> str:
        """A full job-run id from a unique prefix of it."""
        return await self._runner.resolve_id(request.prefix)

    async def get(self, request: GetJobRun) -> JobRunDocument:
        return cast(JobRunDocument, await self._runner.get(request.id))

    async def list(self, request: ListJobRuns) -> builtins.list[JobRunDocument]:
        """One page of job runs, newest first, without the cursor of the next."""
        return (await self.page(request)).items

    async def page(self, request: ListJobRuns) -> Page[JobRunDocument]:
        """One page of job runs, newest first (keyset: stable while others insert)."""
        store = self._engine.store
        rows, cursor = await keyset_page(
            await self._codec(),
            "job-runs",
            {},
            request.cursor,
            page_size(request, self._limits.max_page),
            store.list_job_runs,
            lambda row: (row["created_at"], str(row["id"])),
        )
        items = [
            cast(JobRunDocument, job_run_document(row, await store.job_run_executions(row["id"])))
            for row in rows
        ]
        return Page[JobRunDocument](items=items, next_cursor=cursor)

    async def retry(self, request: RetryJobRun) -> JobRunDocument:
        """Resume a Failed job run (ConflictError for any other): each failed workflow's
        execution is retried in place, as ``executions retry`` does, which opens the job
        run again; once they complete it goes on to its next workflow. The workers run
        them (woken here); :meth:`drive` carries it on in this process instead. Returns
        the job run after the retry (``InProgress``)."""
        await self._runner.retry(request.id, by=request.by)
        await self._wake()
        return await self.get(GetJobRun(id=request.id))

    async def cancel(self, request: CancelJobRun) -> JobRunDocument:
        """Cancel the workflow the job run is on; the job run ends Cancelled once its
        execution takes the cancel (at once when it is between two workflows: the next
        one never starts). With ``settle``, the execution is cancelled here or
        by whoever runs it (watched up to Engine.settle's wait), then the job run
        advances here (a driver or a worker may record it first). Without, the cancel is
        recorded (durable) and the workers woken: its holder or a worker takes it, and the
        worker's job advancer records the end; the answer does not wait for another
        process (the web's click waited up to 30 s for one). Returns the job run after."""
        execution_id = await self._runner.cancel(request.id, by=request.by, reason=request.reason)
        if execution_id is None:  # between two workflows: recorded Cancelled already
            return await self.get(GetJobRun(id=request.id))
        if not request.settle:
            await self._wake()
            return await self.get(GetJobRun(id=request.id))
        await self._engine.settle(execution_id)
        await self._runner.advance(request.id)
        return await self.get(GetJobRun(id=request.id))

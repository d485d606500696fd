"""Job runs: create one from a job-run document, list them, read one with its runs,
resume a failed one and cancel one. A document sent here names pushed workflows only
(the application reads no file for it: CreateJobRun's read_files stays off)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from flowledger.api.bodies import CancelBody, text_body
from flowledger.api.deps import (
    API_PREFIX,
    AppDep,
    IdempotencyKey,
    Operator,
    Paging,
    Viewer,
    key_as_header,
)
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import given, page, render
from flowledger.app import (
    CancelJobRun,
    CreateJobRun,
    GetJobRun,
    JobRunDocument,
    ListJobRuns,
    Page,
    RetryJobRun,
)

router = APIRouter(prefix=API_PREFIX, tags=["job-runs"], responses=ERROR_RESPONSES)

_JOB_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


@router.post(
    "/job-runs",
    status_code=201,
    response_model=JobRunDocument,
    summary="Create a job run from a job-run document naming pushed workflows (operator)",
    description="With an `Idempotency-Key`, once per key: the same key again answers the "
    "job run it created (201), or 409 when the document asks for another job.",
    openapi_extra=_JOB_BODY,
)
async def create_job_run(
    request: Request, app: AppDep, caller: Operator, idempotency_key: IdempotencyKey = None
) -> Response:
    text = await text_body(request, "the job-run document")
    with key_as_header():
        asked = CreateJobRun(
            text=text, created_by=caller.created_by, idempotency_key=idempotency_key
        )
    return render(await app.job_runs.create(asked), 201)


@router.get(
    "/job-runs",
    response_model=Page[JobRunDocument],
    summary="Job runs, newest first (viewer)",
)
async def list_job_runs(app: AppDep, caller: Viewer, paging: Paging) -> Response:
    found = await app.job_runs.page(ListJobRuns(**paging))
    return page(list(found.items), found.next_cursor)


@router.get(
    "/job-runs/{id}",
    response_model=JobRunDocument,
    summary="A job run with each of its workflow runs (viewer)",
)
async def get_job_run(id: str, app: AppDep, caller: Viewer) -> Response:
    return render(await app.job_runs.get(GetJobRun(id=id)))


@router.post(
    "/job-runs/{id}/retry",
    response_model=JobRunDocument,
    summary="Resume a Failed job run: retry its failed workflows in place; 409 unless "
    "failed (operator)",
)
async def retry_job_run(id: str, app: AppDep, caller: Operator) -> Response:
    return render(await app.job_runs.retry(RetryJobRun(id=id, by=caller.created_by)))


@router.post(
    "/job-runs/{id}/cancel",
    response_model=JobRunDocument,
    summary="Cancel the workflow a job run is on, which ends it Cancelled; 409 when it "
    "has ended (operator)",
    description="`jobs cancel ID` and the web page's button: the cancel is recorded "
    "(durable) and the process running the job run's workflow, or a worker, takes it; "
    "the answer does not wait for another process. 200 with the job run once it is "
    "Cancelled, 202 with it as it is while the cancel has not landed yet (poll "
    "`GET /job-runs/{id}`). The body, `{reason}`, is optional, as for an execution's "
    "cancel.",
    responses={
        202: {
            "description": "Accepted: the cancel is recorded, its workflow has not taken it yet",
            "model": JobRunDocument,
        }
    },
)
async def cancel_job_run(
    id: str,
    app: AppDep,
    caller: Operator,
    # As cancelExecution's: an optional plain object (api.routes.executions says why).
    body: Annotated[CancelBody, Body(default_factory=CancelBody)],
) -> Response:
    request = CancelJobRun(id=id, by=caller.created_by, **given(reason=body.reason or None))
    done = await app.job_runs.cancel(request)
    return render(done, 200 if done["status"] == "Cancelled" else 202)

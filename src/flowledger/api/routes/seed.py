"""The seed's runs resource and instance-state view, verbatim (issue 13 point 4): views
over the executions (``flowledger.app.seed`` says how each field maps; ``workflowId``
is the workflow's name)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from flowledger.api.bodies import Body as BodyModel
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
from flowledger.api.render import page, render
from flowledger.app import (
    CreateWorkflowRun,
    GetWorkflowRun,
    ListStates,
    ListWorkflowRuns,
    Page,
    SeedStatus,
    WorkflowInstanceState,
    WorkflowRunDocument,
)

router = APIRouter(prefix=API_PREFIX, tags=["seed"], responses=ERROR_RESPONSES)


class RunBody(BodyModel):
    """``{workflowId, input}``: the pushed workflow's name and its input (null or absent:
    no input)."""

    workflow_id: str
    input: dict[str, Any] | None = None


@router.get(
    "/workflow-runs",
    response_model=Page[WorkflowRunDocument],
    summary="The seed's workflow runs, newest first (viewer)",
)
async def list_workflow_runs(
    app: AppDep,
    caller: Viewer,
    workflow_id: Annotated[str | None, Query(alias="workflowId")] = None,
    status: SeedStatus | None = None,
    job_run_id: Annotated[str | None, Query(alias="jobRunId")] = None,
    *,
    paging: Paging,
) -> Response:
    request = ListWorkflowRuns(
        workflow_id=workflow_id, status=status, job_run_id=job_run_id, **paging
    )
    found = await app.seed.list_runs(request)
    return page(list(found.items), found.next_cursor)


@router.get(
    "/workflow-runs/{id}",
    response_model=WorkflowRunDocument,
    summary="One workflow run (viewer)",
)
async def get_workflow_run(id: str, app: AppDep, caller: Viewer) -> Response:
    return render(await app.seed.get_run(GetWorkflowRun(id=id)))


@router.post(
    "/workflow-runs",
    status_code=201,
    response_model=WorkflowRunDocument,
    summary="Start a pushed workflow by name; workers run it (operator)",
    description="With an `Idempotency-Key`, once per key, as `POST /workflows/{name}/executions` "
    "starts (one key space for both).",
)
async def create_workflow_run(
    app: AppDep,
    caller: Operator,
    body: Annotated[RunBody, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    with key_as_header():
        request = CreateWorkflowRun(
            workflow_id=body.workflow_id,
            input=body.input,
            created_by=caller.created_by,
            idempotency_key=idempotency_key,
        )
    return render(await app.seed.create_run(request), 201)


@router.get(
    "/executions/{id}/states",
    response_model=list[WorkflowInstanceState] | Page[WorkflowInstanceState],
    summary="The seed's WorkflowInstanceState records of an execution, oldest first (viewer)",
    description="Without `limit` and `cursor`, every record as a list (SPEC's answer); "
    "with either, one page as every list gives it: `{items, nextCursor}`.",
)
async def list_instance_states(id: str, app: AppDep, caller: Viewer, paging: Paging) -> Response:
    found = await app.seed.states(ListStates(id=id, **paging))
    if not paging:  # the route's answer as SPEC fixed it before it was paged
        return render(found.items)
    return page(list(found.items), found.next_cursor)

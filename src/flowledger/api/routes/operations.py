"""Operating workflows and reading step logs (the CLI's ``workflows disable|enable|
delete|backfill`` and ``executions logs``, over HTTP).

- ``GET /executions/{id}/logs?after=&cursor=&step=&limit=``: what step handlers logged,
  oldest first, one page (``{items, nextCursor}``, as every list) (viewer);
- ``POST /workflows/{name}/disable``, ``POST /workflows/{name}/enable?catchUp=``,
  ``DELETE /workflows/{name}?force=`` (admin, like pushing);
- ``POST /workflows/{name}/backfill`` ``{from, to}``: one execution per schedule tick
  in the range, each exactly once (operator, like starting one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from flowledger.api.bodies import Body
from flowledger.api.deps import API_PREFIX, Admin, AppDep, Operator, Viewer
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import given, render
from flowledger.app.models import (
    BackfillWorkflow,
    DeleteWorkflow,
    ListStepLogs,
    SwitchWorkflow,
)
from flowledger.app.results import BackfilledTick, StepLogPage, WorkflowDeleted, WorkflowSwitched

router = APIRouter(prefix=API_PREFIX, tags=["operations"], responses=ERROR_RESPONSES)


class BackfillBody(Body):
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")


@router.get(
    "/executions/{id}/logs",
    response_model=StepLogPage,
    summary="What an execution's step handlers logged, oldest first (viewer)",
)
async def list_execution_logs(
    id: str,
    app: AppDep,
    caller: Viewer,
    after: Annotated[int, Query(ge=0, description="only lines with a greater id")] = 0,
    step: Annotated[list[str] | None, Query(description="only these steps' lines")] = None,
    limit: Annotated[
        int | None,
        Query(description="lines per page: 1 to 1000 (FLOWLEDGER_MAX_PAGE); 1000 otherwise"),
    ] = None,
    cursor: Annotated[str | None, Query(description="a page's nextCursor")] = None,
) -> Response:
    request = ListStepLogs(
        id=id, after=after, steps=step or [], cursor=cursor, **given(limit=limit)
    )
    return render(await app.step_logs.list(request))


@router.post(
    "/workflows/{name}/disable",
    response_model=WorkflowSwitched,
    summary="Stop a workflow's schedules, webhooks and entity triggers (admin)",
)
async def disable_workflow(name: str, app: AppDep, caller: Admin) -> Response:
    return render(await app.workflows.switch(SwitchWorkflow(name=name, enabled=False)))


@router.post(
    "/workflows/{name}/enable",
    response_model=WorkflowSwitched,
    summary="Resume a workflow's triggers; catchUp also fires ticks missed meanwhile (admin)",
)
async def enable_workflow(
    name: str,
    app: AppDep,
    caller: Admin,
    catch_up: Annotated[bool, Query(alias="catchUp")] = False,
) -> Response:
    request = SwitchWorkflow(name=name, enabled=True, catch_up=catch_up)
    return render(await app.workflows.switch(request))


@router.delete(
    "/workflows/{name}",
    response_model=WorkflowDeleted,
    summary="Un-push a workflow; its versions and executions stay (admin)",
)
async def delete_workflow(
    name: str, app: AppDep, caller: Admin, force: Annotated[bool, Query()] = False
) -> Response:
    return render(await app.workflows.delete(DeleteWorkflow(name=name, force=force)))


@router.post(
    "/workflows/{name}/backfill",
    status_code=201,
    response_model=list[BackfilledTick],
    summary="Start one execution per schedule tick in [from, to], each once (operator)",
)
async def backfill_workflow(
    name: str, body: BackfillBody, app: AppDep, caller: Operator
) -> Response:
    request = BackfillWorkflow(
        name=name, start=body.start, end=body.end, created_by=caller.created_by
    )
    return render(await app.workflows.backfill(request), 201)

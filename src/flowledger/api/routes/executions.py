"""Executions: list, read (with a long-poll ``wait``), cancel, retry, rerun, submit input,
and their artifacts. Control verbs never run the execution in the request: workers do
(``settle=False``), woken at once. Cancel and input answer the execution once it has
acted on what was sent (200), or, after ``CONTROL_WAIT`` seconds, as it is then with
``pendingSignals`` (202: accepted, pending); the application layer decides which."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.routing import APIRoute

from flowledger.api.bodies import CancelBody, InputBody, RerunBody
from flowledger.api.deps import API_PREFIX, AppDep, Operator, Paging, Viewer
from flowledger.api.disconnect import ClientGone, unless_disconnected
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import given, page, render
from flowledger.app import (
    ArtifactDocument,
    CancelExecution,
    ExecutionDocument,
    GetExecution,
    ListArtifacts,
    ListExecutions,
    Page,
    RetryExecution,
    SubmitInput,
)
from flowledger.app.results import ExecutionsPage
from flowledger.runtime.control import holder_wait

router = APIRouter(prefix=API_PREFIX, tags=["executions"], responses=ERROR_RESPONSES)

#: How long a cancel or an input waits for the execution to act on it (a worker here or
#: elsewhere, woken at once, takes a parked one within milliseconds; a holder, at its
#: next look for signals): runtime.control.holder_wait.
CONTROL_WAIT = holder_wait()
_PENDING: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted, not acted on yet (no worker took it within "
        f"{CONTROL_WAIT:g} s): the execution as it is, with pendingSignals",
        "model": ExecutionDocument,
    }
}


def _control_answer(document: ExecutionDocument) -> Response:
    return render(document, 202 if document.get("pendingSignals") else 200)


class RetriedDocument(ExecutionDocument):
    """The execution after a retry, as a cancel or an input answers it, and the ids of
    the failed steps the retry started again."""

    retriedSteps: list[str]


@router.get(
    "/executions",
    response_model=ExecutionsPage,
    summary="Executions, newest first, one page at a time (viewer)",
)
async def list_executions(
    app: AppDep,
    caller: Viewer,
    status: Annotated[
        list[str] | None,
        Query(description="any of these statuses: repeated, or separated by commas"),
    ] = None,
    workflow: str | None = None,
    correlation_id: Annotated[str | None, Query(alias="correlationId")] = None,
    parent_id: Annotated[str | None, Query(alias="parentId")] = None,
    job_run_id: Annotated[str | None, Query(alias="jobRunId")] = None,
    created_by: Annotated[str | None, Query(alias="createdBy")] = None,
    created_after: Annotated[str | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[str | None, Query(alias="createdBefore")] = None,
    top_level: Annotated[
        bool,
        Query(
            alias="topLevel",
            description="true: only executions without a parent (no sub-workflow's children)",
        ),
    ] = False,
    input_filters: Annotated[
        list[str] | None,
        Query(
            alias="input",
            description="PATH=VALUE: only executions whose input has this value at this "
            'path (`orderId=1234`, `customer.id=7`, `sku="0042"` for the string); the value '
            "is read as JSON when it is JSON, else as text; repeated: all must match (at "
            "most 10)",
        ),
    ] = None,
    include_total: Annotated[
        bool,
        Query(
            alias="includeTotal",
            description="true: the answer adds `total`, how many the filters select in all "
            "(one more read)",
        ),
    ] = False,
    *,
    paging: Paging,
) -> Response:
    request = ListExecutions(
        **given(
            status=status[0] if status and len(status) == 1 else status,
            workflow=workflow,
            correlation_id=correlation_id,
            parent_id=parent_id,
            job_run_id=job_run_id,
            created_by=created_by,
            created_after=created_after,
            created_before=created_before,
            input=input_filters,
        ),
        top_level=top_level,
        include_total=include_total,
        **paging,
    )
    return render((await app.executions.list(request)).to_json())


@router.get(
    "/executions/{id}",
    response_model=ExecutionDocument,
    summary="An execution with its steps; ?wait=N holds until it ends or waits (viewer)",
)
async def get_execution(
    id: str,
    app: AppDep,
    caller: Viewer,
    http: Request,
    wait: Annotated[
        float, Query(description="Seconds (at most 60) to wait for it to end or wait for input")
    ] = 0,
) -> Response:
    request = GetExecution(id=id, wait=wait, caller=caller.name)
    if wait <= 0:
        return Response(await app.executions.get_json(request), media_type="application/json")
    try:  # a client that leaves gives its wait slot back at once
        found = await unless_disconnected(http, app.executions.get_json(request))
    except ClientGone:
        return Response(status_code=499)  # nobody reads it (nginx's "client closed request")
    return Response(found, media_type="application/json")


def get_execution_route() -> APIRoute:
    """The route of :func:`get_execution` (api.hot answers its plainest requests)."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is get_execution)


@router.post(
    "/executions/{id}/cancel",
    response_model=ExecutionDocument,
    summary="Cancel an execution and its children; 409 when it has ended (operator)",
    responses=_PENDING,
)
async def cancel_execution(
    id: str,
    app: AppDep,
    caller: Operator,
    # Optional, described as a plain object: ``CancelBody | None`` was ``anyOf [CancelBody,
    # null]`` in the OpenAPI document, and a client generated from it crashed when called
    # without one. A JSON null is still taken as no body (CancelBody).
    body: Annotated[CancelBody, Body(default_factory=CancelBody)],
) -> Response:
    reason = body.reason or None
    request = CancelExecution(
        id=id, by=caller.created_by, wait=CONTROL_WAIT, **given(reason=reason)
    )
    return _control_answer(await app.executions.cancel(request))


@router.post(
    "/executions/{id}/retry",
    response_model=RetriedDocument,
    summary="Retry a failed execution's failed steps in place; 409 unless failed (operator)",
)
async def retry_execution(id: str, app: AppDep, caller: Operator) -> Response:
    retried = await app.executions.retry(RetryExecution(id=id, by=caller.created_by))
    doc = cast(RetriedDocument, {**retried.execution, "retriedSteps": retried.steps})
    return render(doc)


@router.post(
    "/executions/{id}/rerun",
    status_code=201,
    response_model=ExecutionDocument,
    summary="Start a new execution from a step of an ended one; workers run it (operator)",
    description="The new execution (`rerunOf` names the original) reuses the outputs of "
    "the steps that run before `fromStep` and runs the rest, on the original's version "
    "(`pinned`) or the live one (`latest`): `flowledger executions rerun`. 409 while the "
    "execution has not ended, or when a step it would reuse did not complete or changed; "
    "404 for a step the workflow lacks; 422 for a step inside a loop. It takes no "
    "`Idempotency-Key` (422 when one is sent).",
)
async def rerun_execution(id: str, body: RerunBody, app: AppDep, caller: Operator) -> Response:
    return render(await app.executions.rerun(body.request(id, caller.created_by)), 201)


@router.post(
    "/executions/{id}/steps/{step_id}/input",
    response_model=ExecutionDocument,
    summary="Submit a waiting step's input; 422 when its schema refuses it (operator)",
    responses=_PENDING,
)
async def submit_input(
    id: str, step_id: str, body: InputBody, app: AppDep, caller: Operator
) -> Response:
    request = SubmitInput(
        id=id, step=step_id, data=body.data, by=caller.created_by, wait=CONTROL_WAIT
    )
    return _control_answer(await app.executions.submit_input(request))


@router.get(
    "/executions/{id}/artifacts",
    response_model=Page[ArtifactDocument],
    summary="The files the execution's steps saved, newest first (viewer)",
)
async def list_execution_artifacts(
    id: str, app: AppDep, caller: Viewer, paging: Paging
) -> Response:
    found = await app.artifacts.page(ListArtifacts(execution_id=id, **paging))
    return page(list(found.items), found.next_cursor)

"""Workflows: push a definition, list them, read them and their versions, start one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from fastapi.routing import APIRoute
from typing_extensions import TypedDict

from flowledger.api.bodies import StartBody, text_body
from flowledger.api.deps import (
    API_PREFIX,
    Admin,
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
    ExecutionDocument,
    GetWorkflow,
    GetWorkflowVersion,
    ListWorkflows,
    Page,
    PushWorkflows,
    WorkflowDetail,
    WorkflowSummary,
    WorkflowText,
    WorkflowVersionDocument,
)

router = APIRouter(prefix=API_PREFIX, tags=["workflows"], responses=ERROR_RESPONSES)

_DEFINITION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


class PushedRef(TypedDict):
    name: str
    version: int
    id: str
    changed: bool
    #: Likely mistakes the push took all the same (app.workflows), one line each.
    warnings: list[str]


@router.post(
    "/workflows",
    status_code=201,
    response_model=PushedRef,
    summary="Push a definition, YAML or JSON (admin)",
    description="201 with the version the definition now is: a new one, or the live "
    "version when the definition equals it (nothing stored, `changed` false).",
    openapi_extra=_DEFINITION_BODY,
)
async def push_workflow(request: Request, app: AppDep, caller: Admin) -> Response:
    text = await text_body(request, "the definition (YAML or JSON)")
    pushed = await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    first = pushed[0]
    ref: PushedRef = {
        "name": first["name"],
        "version": first["version"],
        "id": first["versionId"],
        "changed": first["changed"],
        "warnings": first["warnings"],
    }
    # 201 either way, as SPEC section 6 fixes it: a push is idempotent, and a client
    # that pushes on every deploy reads `changed`, not the status, to see what it did.
    return render(ref, 201)


@router.get(
    "/workflows",
    response_model=Page[WorkflowSummary],
    summary="The pushed workflows with their triggers, newest first (viewer)",
)
async def list_workflows(app: AppDep, caller: Viewer, paging: Paging) -> Response:
    found = await app.workflows.page(ListWorkflows(**paging))
    return page(list(found.items), found.next_cursor)


@router.get(
    "/workflows/{name}",
    response_model=WorkflowDetail,
    summary="A workflow: its live version and every stored version (viewer)",
)
async def get_workflow(name: str, app: AppDep, caller: Viewer) -> Response:
    return render(await app.workflows.get(GetWorkflow(name=name)))


@router.get(
    "/workflows/{name}/versions/{version}",
    response_model=WorkflowVersionDocument,
    summary="One stored version with its definition document (viewer)",
)
async def get_workflow_version(name: str, version: int, app: AppDep, caller: Viewer) -> Response:
    return render(await app.workflows.get_version(GetWorkflowVersion(name=name, version=version)))


@router.post(
    "/workflows/{name}/executions",
    status_code=201,
    response_model=ExecutionDocument,
    summary="Start a pushed workflow; workers run it (operator)",
)
async def start_execution(
    name: str,
    app: AppDep,
    caller: Operator,
    # No body starts without input; a JSON null is refused (422) as any non-object is.
    body: Annotated[StartBody, Body(default_factory=StartBody)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # api.hot answers the plainest of these before routing, with the same two calls.
    with key_as_header():
        request = body.request(name, caller.created_by, idempotency_key)
    return render(await app.executions.start(request), 201)


def start_execution_route() -> APIRoute:
    """The route of :func:`start_execution` (api.hot answers its plainest requests)."""
    return next(
        r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is start_execution
    )

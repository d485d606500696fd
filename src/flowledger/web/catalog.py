"""Workflows (versions, source, diff, graph, triggers, start form), job runs, entity
types and entities, subscriptions and their deliveries."""

from __future__ import annotations

import asyncio
import difflib
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowledger.app import (
    CancelJobRun,
    GetJobRun,
    GetWorkflow,
    GetWorkflowVersion,
    ListDeliveries,
    ListEntities,
    ListEntityTypes,
    ListJobRuns,
    ListWorkflows,
    RetryJobRun,
    StartExecution,
)
from flowledger.app.graph_view import DefinitionGraph
from flowledger.app.statuses import http_status
from flowledger.errors import FlowledgerError
from flowledger.web.actions import ActionPage, act, reason
from flowledger.web.auth import Form, app_of, changing, session_of
from flowledger.web.forms import error_field, read_form, whole_number
from flowledger.web.render import guarded, page, see_other

router = APIRouter(include_in_schema=False)


@router.get("/workflows")
@guarded
async def workflows(request: Request) -> Response:
    session = await session_of(request)
    found = await app_of(request).workflows.list(ListWorkflows())
    return page(request, "workflows.html", session, title="Workflows", workflows=found)


async def _workflow_page(request: Request, name: str, status: int = 200, **extra: Any) -> Response:
    session = await session_of(request)
    app = app_of(request)
    detail = await app.workflows.get(GetWorkflow(name=name))
    newest = max(v["version"] for v in detail["versions"])
    live = detail["live"]["version"] if detail["live"] else newest
    shown = whole_number(request.query_params.get("version") or str(live), "version")
    version = await app.workflows.get_version(GetWorkflowVersion(name=name, version=shown))
    source = version.get("source", "")
    diff: list[str] = []
    against = request.query_params.get("diff")
    if against and against.isdigit():
        other = await app.workflows.get_version(GetWorkflowVersion(name=name, version=int(against)))
        # Off the event loop: two large versions took seconds, which every other
        # request (and the in-process worker's lease renewals) waited behind.
        diff = await asyncio.to_thread(
            _unified_diff, other.get("source", ""), source, f"version {against}", f"version {shown}"
        )
    nodes, edges = await app.views.definition_graph(DefinitionGraph(name=name, version=shown))
    document = version.get("document") or {}
    return page(
        request,
        "workflow.html",
        session,
        status,
        title=f"Workflow {name}",
        detail=detail,
        version=version,
        source=source,
        diff=diff,
        against=against,
        graph={"nodes": nodes, "edges": edges},
        input_schema=document.get("input_schema"),
        description=document.get("description"),
        here=f"/workflows/{quote(name)}",
        **extra,
    )


@router.get("/workflows/{name}")
@guarded
async def workflow(request: Request, name: str) -> Response:
    return await _workflow_page(request, name)


@router.post("/workflows/{name}/start")
@guarded
async def start(request: Request, name: str) -> Response:
    session, form = await changing(request, "operator")
    app = app_of(request)
    version = await app.workflows.get_version(
        GetWorkflowVersion(
            name=name, version=whole_number((form.get("version") or ["1"])[0] or "1", "version")
        )
    )
    schema = (version.get("document") or {}).get("input_schema")
    correlation = (form.get("correlation_id") or [""])[0] or None
    try:
        data = read_form(schema, form) if schema else {}
        doc = await app.executions.start(
            StartExecution(
                workflow=name,
                input=data,
                version=version["version"],
                correlation_id=correlation,
                created_by=session.caller["createdBy"],
            )
        )
    except FlowledgerError as exc:
        field = error_field(exc, "input")
        return await _workflow_page(
            request,
            name,
            http_status(exc)[0],
            start_error=str(exc),
            start_field=field,
            start_values=form,  # what was typed, not lost to a refusal
        )
    return see_other(f"/executions/{doc['id']}")


@router.get("/job-runs")
@guarded
async def job_runs(request: Request) -> Response:
    session = await session_of(request)
    runs = await app_of(request).job_runs.list(ListJobRuns(limit=100))
    return page(request, "job_runs.html", session, title="Job runs", runs=runs)


async def _job_run_page(request: Request, run_id: str, status: int = 200, **extra: Any) -> Response:
    session = await session_of(request)
    view = await app_of(request).views.job_run(GetJobRun(id=run_id))
    run = view["run"]
    title = f"Job run {run['name']}"
    return page(
        request,
        "job_run.html",
        session,
        status,
        title=title,
        run=run,
        ended=view["ended"],
        cancels=view["cancels"],
        **extra,
    )


@router.get("/job-runs/{run_id}")
@guarded
async def job_run(request: Request, run_id: str) -> Response:
    return await _job_run_page(request, run_id)


def _job_run_actions(request: Request, run_id: str) -> ActionPage:
    """The job run's page, which its actions return to (again with a refusal)."""

    async def again(status: int, error: str) -> Response:
        return await _job_run_page(request, run_id, status, action_error=error)

    return ActionPage(f"/job-runs/{run_id}", again)


@router.post("/job-runs/{run_id}/retry")
@guarded
async def retry_job_run(request: Request, run_id: str) -> Response:
    """``jobs retry ID``, ``POST /job-runs/{id}/retry``: the workers carry it on."""

    async def operation(by: str, _: Form) -> object:
        return await app_of(request).job_runs.retry(RetryJobRun(id=run_id, by=by))

    return await act(request, _job_run_actions(request, run_id), operation)


@router.post("/job-runs/{run_id}/cancel")
@guarded
async def cancel_job_run(request: Request, run_id: str) -> Response:
    """``jobs cancel ID``: the workflow it is on is cancelled, which ends the job run."""

    async def operation(by: str, form: Form) -> object:
        why = reason(form, "job run cancelled in the web UI")
        return await app_of(request).job_runs.cancel(CancelJobRun(id=run_id, by=by, reason=why))

    return await act(request, _job_run_actions(request, run_id), operation)


@router.get("/entities")
@guarded
async def entities(request: Request) -> Response:
    session = await session_of(request)
    app = app_of(request)
    types = await app.entities.list_types(ListEntityTypes())
    chosen = request.query_params.get("type") or (types[0]["name"] if types else None)
    field = request.query_params.get("field", "")
    value = request.query_params.get("value", "")
    listing = None
    if chosen:
        where = {field: _typed_in(value)} if field and value else {}
        listing = await app.entities.list(ListEntities(entity_type=chosen, filter=where, limit=100))
    return page(
        request,
        "entities.html",
        session,
        title="Entities",
        types=types,
        chosen=chosen,
        listing=listing,
        field=field,
        value=value,
    )


def _typed_in(text: str) -> Any:
    """What a value typed into the filter matches: the text, and also the number,
    boolean or null it spells (``7`` finds ``Score: 7`` and ``Code: "7"``)."""
    try:
        typed = json.loads(text)
    except ValueError:
        return text
    if typed is None or isinstance(typed, bool | int | float):
        return {"in": [text, typed]}
    return text


@router.get("/subscriptions")
@guarded
async def subscriptions(request: Request) -> Response:
    session = await session_of(request, "admin")
    app = app_of(request)
    found = await app.subscriptions.list()
    chosen = request.query_params.get("id")
    deliveries = None
    if chosen:
        deliveries = await app.subscriptions.deliveries(ListDeliveries(subscription_id=chosen))
    return page(
        request,
        "subscriptions.html",
        session,
        title="Subscriptions",
        subscriptions=found,
        chosen=chosen,
        deliveries=deliveries,
    )


def _unified_diff(before: str, after: str, old_name: str, new_name: str) -> list[str]:
    return list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), old_name, new_name, lineterm=""
        )
    )

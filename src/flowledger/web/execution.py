"""The execution page: graph, timeline, attempts (each with its step logs, fetched when
it is opened), data store, console, events, artifacts, and the actions a role allows
(cancel with a reason, retry, rerun from a step, a waiting step's form). A short id (a
unique prefix, as the page and the CLI show ids) is sent on to the full one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowledger.app import (
    CancelExecution,
    FollowEvents,
    GetArtifact,
    PendingInputs,
    RerunExecution,
    ResolveId,
    RetryExecution,
    SubmitInput,
)
from flowledger.app.artifact_previews import ArtifactPreviews, media_type
from flowledger.app.console import EvaluateExpression
from flowledger.app.downloads import content_disposition
from flowledger.app.models import ListStepLogs
from flowledger.app.rerun_reuse import RerunReuse
from flowledger.app.statuses import http_status
from flowledger.app.views import GetExecutionView
from flowledger.errors import AmbiguousIdError, FlowledgerError, NotFoundError, TooManyError
from flowledger.runtime.status import ExecutionStatus
from flowledger.web.actions import ActionPage, act, reason
from flowledger.web.auth import Form, app_of, changing, first, session_of
from flowledger.web.forms import error_field, read_form, whole_number
from flowledger.web.live import change_stream
from flowledger.web.render import guarded, is_fragment, page, see_other

router = APIRouter(include_in_schema=False)
#: Events the page lists (the newest); the API and `executions events` give them all.
MAX_EVENTS = 500
#: Log lines shown of an attempt at a time (it keeps FLOWLEDGER_STEP_LOG_LIMIT bytes of
#: them, 64 KiB by default, each line at most 4,096 characters); a link pages on.
LOG_LINES = 200


def _iterations(values: list[str], fields: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    """``?iteration=loop:3`` (repeatable; the page's links) and ``?iteration.loop=3`` (the
    picker's number fields, empty: all) → {loop: 3}; anything else is ignored."""
    chosen: dict[str, int] = {}
    pairs = [value.partition(":")[::2] for value in values]
    pairs += [
        (name.removeprefix("iteration."), index)
        for name, index in fields
        if name.startswith("iteration.")
    ]
    for loop, index in pairs:
        if loop and index.isdigit():
            chosen[loop] = int(index)
    return chosen


async def _render(request: Request, execution_id: str, status: int = 200, **extra: Any) -> Response:
    session = await session_of(request)
    app = app_of(request)
    query = request.query_params
    iterations = _iterations(query.getlist("iteration"), query.multi_items())
    asked = (query.get("step") or "").strip()
    view = await app.views.execution(
        GetExecutionView(id=execution_id, iterations=iterations, step=asked[:128] or None)
    )
    events = view["events"]
    artifacts = await app.views.artifacts(ArtifactPreviews(execution_id=execution_id))
    status_now = ExecutionStatus(view["execution"]["runtimeStatus"])
    iteration_query = "&".join(f"iteration={k}:{v}" for k, v in view["iterations"].items())
    step_query = f"step={view['step']}" if view["step"] else ""  # a step id: [a-z0-9_]
    template = "execution_part.html" if is_fragment(request) else "execution.html"
    return page(
        request,
        template,
        session,
        status,
        title=f"{view['execution']['workflowName']} · {execution_id[:8]}",
        view=view,
        doc=view["execution"],
        events=events,
        artifacts=artifacts,
        terminal=status_now.terminal,
        last_seq=events[-1]["seq"] if events else 0,
        max_events=MAX_EVENTS,
        iteration_query=iteration_query,
        view_query="&".join(q for q in (iteration_query, step_query) if q),
        asked_step=asked,
        here=f"/executions/{execution_id}",
        **extra,
    )


@router.get("/executions/{execution_id}")
@guarded
async def execution_page(request: Request, execution_id: str) -> Response:
    try:
        return await _render(request, execution_id)
    except NotFoundError as missing:
        return await _by_prefix(request, execution_id, missing)


async def _by_prefix(request: Request, prefix: str, missing: NotFoundError) -> Response:
    """No execution has the id ``prefix``: on to the one it starts (the application's
    resolution, as the CLI's), a list of those it starts when several do, else the 404."""
    try:
        full = await app_of(request).executions.resolve_id(ResolveId(prefix=prefix))
    except AmbiguousIdError as several:
        session = await session_of(request)
        return page(
            request,
            "ambiguous.html",
            session,
            300,
            title="Several executions",
            prefix=prefix,
            matches=several.matches,
            more=several.more,
        )
    except FlowledgerError:
        raise missing from None
    if full == prefix:
        raise missing
    query = request.url.query
    return see_other(f"/executions/{full}" + (f"?{query}" if query else ""))


@router.get("/executions/{execution_id}/attempts/{attempt_id}/logs")
@guarded
async def attempt_logs(request: Request, execution_id: str, attempt_id: str) -> Response:
    """What one attempt's handler logged (its traceback too), through the operation
    behind the API's ``GET …/logs``, for the roles it allows (viewer): the lines alone
    for the page's attempt (htmx), else a page of their own (without JavaScript)."""
    session = await session_of(request)
    found = await app_of(request).step_logs.list(
        ListStepLogs(
            id=execution_id,
            attempts=[attempt_id],
            limit=LOG_LINES,
            cursor=request.query_params.get("cursor") or None,
        )
    )
    lines = found["items"]
    template = "step_logs.html" if is_fragment(request) else "step_logs_page.html"
    return page(
        request,
        template,
        session,
        title=f"Log lines · {execution_id[:8]}",
        lines=lines,
        next_cursor=found["nextCursor"],
        execution_id=execution_id,
        attempt_id=attempt_id,
        step_id=lines[0]["stepId"] if lines else None,
    )


@router.get("/executions/{execution_id}/live")
@guarded
async def execution_live(request: Request, execution_id: str) -> Response:
    session = await session_of(request)
    streams = app_of(request).streams
    after = whole_number(request.query_params.get("after", "0") or "0", "after")
    follow = FollowEvents(
        id=execution_id,
        after_seq=after,
        caller=f"web:{session.caller['name']}",
        credential=session.credential,
    )
    if await streams.ended(follow):
        return Response(status_code=204)  # EventSource stops reconnecting
    return change_stream(await streams.follow(follow))


def _execution_actions(request: Request, execution_id: str) -> ActionPage:
    """The execution's page, which its actions return to (again with a refusal)."""

    async def again(status: int, error: str) -> Response:
        return await _render(request, execution_id, status, action_error=error)

    return ActionPage(f"/executions/{execution_id}", again)


@router.post("/executions/{execution_id}/cancel")
@guarded
async def cancel(request: Request, execution_id: str) -> Response:
    async def operation(by: str, form: Form) -> object:
        why = reason(form, "cancelled in the web UI")
        return await app_of(request).executions.cancel(
            CancelExecution(id=execution_id, by=by, reason=why)
        )

    return await act(request, _execution_actions(request, execution_id), operation)


@router.post("/executions/{execution_id}/retry")
@guarded
async def retry(request: Request, execution_id: str) -> Response:
    async def operation(by: str, _: Form) -> object:
        return await app_of(request).executions.retry(RetryExecution(id=execution_id, by=by))

    return await act(request, _execution_actions(request, execution_id), operation)


@router.post("/executions/{execution_id}/rerun")
@guarded
async def rerun(request: Request, execution_id: str) -> Response:
    session, form = await changing(request, "operator")
    version = "latest" if first(form, "version") == "latest" else "pinned"
    try:
        new = await app_of(request).executions.rerun(
            RerunExecution(
                id=execution_id,
                from_step=first(form, "from_step"),
                version=version,
                by=session.caller["createdBy"],
            )
        )
    except FlowledgerError as exc:
        return await _render(request, execution_id, http_status(exc)[0], action_error=str(exc))
    return see_other(f"/executions/{new['id']}")


@router.get("/executions/{execution_id}/rerun-reuse")
@guarded
async def rerun_reuse(request: Request, execution_id: str) -> Response:
    """The rerun form's hint for the step picked: asked per step, since every step's
    would be n²/2 ids on the page of a chain of n."""
    session = await session_of(request)
    step = request.query_params.get("from_step", "")
    found = await app_of(request).views.rerun_reuse(RerunReuse(id=execution_id, from_step=step))
    return page(request, "rerun_reuse.html", session, reuse=found)


@router.post("/executions/{execution_id}/steps/{step_id}/input")
@guarded
async def submit_input(request: Request, execution_id: str, step_id: str) -> Response:
    session, form = await changing(request, "operator")
    app = app_of(request)
    waiting = await app.executions.pending_inputs(PendingInputs(id=execution_id))
    # Named by its step id, or by its step execution id when it waits in several loop
    # iterations (the form says which); this execution's own before its children's.
    named = [p for p in waiting if step_id in (p["stepId"], p["stepExecutionId"])]
    pending = next((p for p in named if p["executionId"] == execution_id), None)
    try:
        data = read_form(pending["schema"] if pending else None, form)
        await app.executions.submit_input(
            SubmitInput(id=execution_id, step=step_id, data=data, by=session.caller["createdBy"])
        )
    except FlowledgerError as exc:
        field = error_field(exc, "data")
        return await _render(
            request,
            execution_id,
            http_status(exc)[0],
            input_error=str(exc),
            input_step=step_id,
            input_field=field,
            input_values=form,  # what was typed, not lost to a refusal
        )
    return see_other(f"/executions/{execution_id}")


@router.post("/executions/{execution_id}/console")
@guarded
async def console(request: Request, execution_id: str) -> Response:
    session, form = await changing(request, "viewer")
    expression = first(form, "expression") or " "
    try:
        result = await app_of(request).console.evaluate(
            EvaluateExpression(
                id=execution_id,
                expression=expression,
                iterations=_iterations(form.get("iteration", [])),
            )
        )
    except TooManyError as exc:  # shown where the value would be (app.js swaps it in)
        busy = {
            "expression": expression,
            "ok": False,
            "value": None,
            "errorKind": "Busy",
            "error": str(exc),
        }
        response = page(request, "console_result.html", session, 429, result=busy)
        response.headers["Retry-After"] = "1"
        return response
    return page(request, "console_result.html", session, result=result)


@router.get("/ui/artifacts/{artifact_id}/preview")
@guarded
async def artifact_preview(request: Request, artifact_id: str) -> Response:
    """A small image artifact drawn on its execution's page (the download's role and
    checks; 404 for one the page does not preview)."""
    await session_of(request)
    doc, body = await app_of(request).views.artifact_image(GetArtifact(id=artifact_id))
    return Response(body, media_type=media_type(doc["contentType"]))


@router.get("/ui/artifacts/{artifact_id}")
@guarded
async def artifact(request: Request, artifact_id: str) -> Response:
    await session_of(request)
    doc, body = await app_of(request).artifacts.read(GetArtifact(id=artifact_id))
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Content-Disposition": content_disposition(doc["name"])},
    )

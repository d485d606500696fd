"""The web face in-process (httpx over ASGI, no browser): every route, its refusals,
its headers. Quick, on SQLite and PostgreSQL; tests/web/test_ui.py drives a browser."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest

from flowledger.app import (
    App,
    CancelExecution,
    CreateEntity,
    CreateEntityType,
    CreateJobRun,
    CreateToken,
    DriveJobRun,
    GetExecution,
    GetJobRun,
    PushWorkflows,
    RetryExecution,
    RevokeToken,
    StartExecution,
    WorkflowText,
)
from flowledger.app import console as console_module
from flowledger.app.subscriptions import CreateSubscription
from tests.raw_sql import run_sql
from tests.web.fast_routes import WebApps
from tests.web.images import png

ASK = """\
name: ask
input_schema:
  type: object
  properties: {n: {type: integer}, mode: {type: string, enum: [a, b]}}
  required: [n]
steps:
  - id: approve
    type: sys.wait_for_input
    input:
      prompt: "Approve {{ input.n }}?"
      schema:
        type: object
        properties: {ok: {type: boolean}, count: {type: integer, minimum: 1}, tags: {type: array}}
        required: [ok]
  - {id: after, type: sys.transform, input: {value: "{{ steps.approve.output.ok }}"}}
"""
BOOM = """\
name: boom
steps:
  - {id: first, type: sys.transform, input: {value: 1}}
  - {id: fail, type: sys.fail, input: {message: "<b>bad</b>"}}
"""
ROLES = ("viewer", "operator", "admin")
XSS_TEXT = "<script>alert(1)</script>"


class Web:
    def __init__(self, app: App, http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.app = app
        self.http = http
        self.tokens = tokens

    async def sign_in(self, role: str) -> httpx.AsyncClient:
        self.http.cookies.clear()
        answer = await self.http.post("/signin", data={"token": self.tokens[role]})
        assert answer.status_code == 303, answer.text
        return self.http

    async def csrf(self, path: str = "/executions") -> str:
        page = await self.http.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    async def start(self, workflow: str, data: dict[str, object] | None = None) -> str:
        doc = await self.app.executions.start(
            StartExecution(workflow=workflow, input=data or {}, hold=True)
        )
        await self.app.engine.drive(doc["id"])
        return doc["id"]


@pytest.fixture
async def web(db_url: str, web_apps: WebApps) -> AsyncIterator[Web]:
    async with App(db_url) as app:
        await app.workflows.push(
            PushWorkflows(texts=[WorkflowText(text=ASK), WorkflowText(text=BOOM)])
        )
        tokens = {
            role: (await app.tokens.create(CreateToken(name=role, role=role)))["token"]
            for role in ROLES
        }
        transport = httpx.ASGITransport(app=web_apps.web_api(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as http:
            yield Web(app, http, tokens)


async def test_sign_in_redirects_and_headers(web: Web) -> None:
    http = web.http
    answer = await http.get("/executions?status=Failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=/executions%3Fstatus%3DFailed"
    page = await http.get("/signin?next=//evil.example/x")
    assert 'name="next" value="/executions"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    elsewhere = {"Origin": "https://evil.example"}
    forged = await http.post("/signin", data={"token": web.tokens["admin"]}, headers=elsewhere)
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    # A sandboxed frame's opaque origin could sign a victim in as the attacker.
    opaque = {"Origin": "null"}
    framed = await http.post("/signin", data={"token": web.tokens["admin"]}, headers=opaque)
    assert framed.status_code == 403 and "set-cookie" not in framed.headers
    refused = await http.post("/signin", data={"token": "flt_nope"})
    assert refused.status_code == 401 and "not valid" in refused.text
    answer = await http.post("/signin", data={"token": web.tokens["viewer"], "next": "/workflows"})
    assert answer.status_code == 303 and answer.headers["location"] == "/workflows"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert (await http.get("/")).headers["location"] == "/executions"
    api = await http.get("/api/v1/executions")
    assert "content-security-policy" not in api.headers  # the JSON API is left alone
    assert api.status_code == 401  # and a cookie is no bearer token
    assert (await http.get("/ui/static/vendor/htmx.min.js")).status_code == 200
    csrf = await web.csrf()
    assert (await http.post("/signout", data={"csrf": csrf})).status_code == 303
    assert (await http.get("/executions")).status_code == 303


async def test_every_page_for_each_role(web: Web) -> None:
    waiting = await web.start("ask", {"n": 2})
    failed = await web.start("boom")
    await web.app.entities.create_type(CreateEntityType(name="Lead"))
    await web.app.entities.create(CreateEntity(entity_type="Lead", payload={"Status": "New"}))
    job = await web.app.job_runs.create(
        CreateJobRun(text="name: nightly\nworkflows:\n  - {workflow: boom}\n", hold=True)
    )
    await web.app.subscriptions.create(
        CreateSubscription(url="https://example.com/hook", events=["execution.failed"])
    )
    await web.app.workflows.push(
        PushWorkflows(
            texts=[
                WorkflowText(
                    text=BOOM + "# v2\n  - {id: more, type: sys.no_action, after: [first]}\n"
                )
            ]
        )
    )
    http = await web.sign_in("viewer")
    listing = await http.get("/executions")
    assert listing.status_code == 200 and waiting[:8] in listing.text
    assert 'data-count="Failed"' in listing.text
    part = await http.get("/executions?status=Failed", headers={"HX-Request": "true"})
    assert part.text.lstrip().startswith('<div id="live-region"') and waiting[:8] not in part.text
    page = await http.get(f"/executions/{waiting}")
    assert "Approve 2?" in page.text and "Cancel execution" not in page.text
    page = await http.get(f"/executions/{failed}")
    assert "&lt;b&gt;bad&lt;/b&gt;" in page.text and "<b>bad</b>" not in page.text
    assert 'id="retry"' not in page.text
    for path in (
        "/workflows",
        "/workflows/boom",
        "/workflows/boom?version=2&diff=1",
        "/job-runs",
        f"/job-runs/{job['id']}",
        "/entities",
        "/entities?type=Lead&field=Status&value=New",
    ):
        answer = await http.get(path)
        assert answer.status_code == 200, (path, answer.text)
    diff = (await http.get("/workflows/boom?version=2&diff=1")).text
    assert (
        "+# v2" in diff and "+  - {id: more, type: sys.no_action, after: [first]}" in diff
    )  # as pushed
    await web.app.job_runs.drive(DriveJobRun(id=job["id"]))
    job_page = (await http.get(f"/job-runs/{job['id']}")).text
    assert "in step <code>fail</code>: &lt;b&gt;bad&lt;/b&gt;" in job_page  # why, escaped
    assert (await http.get("/subscriptions")).status_code == 403
    assert (await http.get("/executions/nope")).status_code == 404
    assert (await http.get("/workflows/nope")).status_code == 404
    http = await web.sign_in("operator")
    page = await http.get(f"/executions/{failed}")
    assert 'id="retry"' in page.text and 'id="rerun"' in page.text
    assert 'id="start-form"' in (await http.get("/workflows/ask")).text
    http = await web.sign_in("admin")
    subscriptions = await http.get("/subscriptions")
    assert "example.com/hook" in subscriptions.text
    sub_id = re.search(r"/subscriptions\?id=([^\"]+)", subscriptions.text)
    assert sub_id and (await http.get(f"/subscriptions?id={sub_id.group(1)}")).status_code == 200


async def test_a_workflow_page_shows_the_definition_as_pushed(web: Web) -> None:
    text = (
        "# Greets <b>whoever</b> asks: reviewed by ops\n"
        "steps:   # kept before name, as written\n"
        "  - {id: greet, type: sys.transform, input: {value: hi}}\n"
        "name: commented\n"
    )
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    http = await web.sign_in("viewer")
    page = (await http.get("/workflows/commented")).text
    shown = re.search(r'<pre class="source">(.*?)</pre>', page, re.S)
    assert shown, page
    assert shown.group(1) == html.escape(text, quote=False)
    assert "<b>whoever</b>" not in page


async def test_actions_need_the_role_and_the_csrf_token(web: Web) -> None:
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("viewer")
    csrf = await web.csrf()
    assert (
        await http.post(f"/executions/{waiting}/cancel", data={"csrf": csrf})
    ).status_code == 403
    http = await web.sign_in("operator")
    assert (await http.post(f"/executions/{waiting}/cancel")).status_code == 403
    stale = await http.post(f"/executions/{waiting}/cancel", data={"csrf": csrf})
    assert stale.status_code == 403  # another session's token
    csrf = await web.csrf()
    cross = await http.post(
        f"/executions/{waiting}/cancel",
        data={"csrf": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    ok = await http.post(f"/executions/{waiting}/cancel", data={"csrf": csrf})
    assert ok.status_code == 303
    await web.app.engine.drive(waiting)
    doc = await web.app.executions.get(GetExecution(id=waiting))
    assert doc["runtimeStatus"] == "Cancelled"
    again = await http.post(f"/executions/{waiting}/cancel", data={"csrf": csrf})
    assert again.status_code == 409 and 'id="action-error"' in again.text


async def test_an_operator_retries_a_failed_job_run_from_its_page(web: Web) -> None:
    """The job-run page had no retry, while ``jobs retry ID`` and ``POST
    /job-runs/{id}/retry`` had: a form like the execution page's, for operators."""
    job = await web.app.job_runs.create(
        CreateJobRun(text="name: nightly\nworkflows:\n  - {workflow: boom}\n", hold=True)
    )
    await web.app.job_runs.drive(DriveJobRun(id=job["id"]))
    url = f"/job-runs/{job['id']}"
    http = await web.sign_in("viewer")
    assert 'id="retry"' not in (await http.get(url)).text  # no button it cannot use
    viewer_csrf = await web.csrf(url)
    assert (await http.post(f"{url}/retry", data={"csrf": viewer_csrf})).status_code == 403
    http = await web.sign_in("operator")
    shown = (await http.get(url)).text
    assert f'action="{url}/retry"' in shown and 'id="retry"' in shown
    assert (await http.post(f"{url}/retry")).status_code == 403  # no CSRF token
    csrf = await web.csrf(url)
    retried = await http.post(f"{url}/retry", data={"csrf": csrf})
    assert retried.status_code == 303 and retried.headers["location"] == url
    after = await web.app.job_runs.get(GetJobRun(id=job["id"]))
    assert after["status"] == "InProgress"
    assert 'id="retry"' not in (await http.get(url)).text  # only a Failed one is retried
    again = await http.post(f"{url}/retry", data={"csrf": csrf})
    assert again.status_code == 409 and 'id="action-error"' in again.text
    assert "only a Failed job run is retried" in again.text


async def test_an_operator_cancels_a_running_job_run_from_its_page(web: Web) -> None:
    """The job-run page had no cancel, while ``jobs cancel ID`` had (on-call tour): a
    form that asks first, like the execution page's, for operators only."""
    job = await web.app.job_runs.create(
        CreateJobRun(
            text="name: nightly\nworkflows:\n  - {workflow: ask, input: {n: 3}}\n"
            "  - {workflow: boom}\n",
            hold=True,
        )
    )
    await web.app.job_runs.drive(DriveJobRun(id=job["id"]))  # it waits for a person
    url = f"/job-runs/{job['id']}"
    http = await web.sign_in("viewer")
    shown = (await http.get(url)).text
    assert 'id="cancel-open"' not in shown and f'action="{url}/cancel"' not in shown
    viewer_csrf = await web.csrf(url)
    refused = await http.post(f"{url}/cancel", data={"csrf": viewer_csrf})
    assert refused.status_code == 403
    http = await web.sign_in("operator")
    shown = (await http.get(url)).text
    assert '<details class="confirm"' in shown and f'action="{url}/cancel"' in shown
    assert 'id="retry"' not in shown  # it has not failed
    assert (await http.post(f"{url}/cancel", data={"reason": "x"})).status_code == 403  # no CSRF
    assert (await web.app.job_runs.get(GetJobRun(id=job["id"])))["status"] != "Cancelled"
    csrf = await web.csrf(url)
    cancelled = await http.post(f"{url}/cancel", data={"csrf": csrf, "reason": "wrong day"})
    assert cancelled.status_code == 303 and cancelled.headers["location"] == url
    # Recorded, and left to the workers (none here): the page says it is being cancelled.
    shown = (await http.get(url)).text
    assert 'id="pending-cancel"' in shown and 'id="cancel-open"' not in shown
    waiting = (await web.app.job_runs.get(GetJobRun(id=job["id"])))["runs"][0]["executionId"]
    await web.app.engine.drive(waiting)  # as a worker does
    after = await web.app.job_runs.get(GetJobRun(id=job["id"]))
    assert after["status"] == "Cancelled"
    assert [r["runtimeStatus"] for r in after["runs"]] == ["Cancelled", None]  # boom never ran
    execution = await web.app.executions.get(GetExecution(id=after["runs"][0]["executionId"]))
    assert execution["error"]["message"] == "cancelled: wrong day"
    assert execution["error"]["cancelledBy"] == "api-token:operator"
    shown = (await http.get(url)).text
    assert 'id="cancel-open"' not in shown and 'id="retry"' not in shown
    again = await http.post(f"{url}/cancel", data={"csrf": csrf})
    assert again.status_code == 409 and 'id="action-error"' in again.text
    assert "already ended: Cancelled" in again.text


async def test_a_job_run_cancel_answers_while_another_process_holds_its_workflow(
    web: Web,
) -> None:
    """A job run's cancel from its page carried the execution on in the serve process:
    while another process held it, the click waited for it, up to 30 s (Engine.settle's
    watch). The page's cancel is recorded (durable) and left to the holder and the
    workers, as an execution's is: it answers while the other process still holds the
    execution, and the page says "Cancelling" until the cancel lands."""
    job = await web.app.job_runs.create(
        CreateJobRun(
            text="name: nightly\nworkflows:\n  - {workflow: ask, input: {n: 3}}\n", hold=True
        )
    )
    await web.app.job_runs.drive(DriveJobRun(id=job["id"]))  # it waits for a person
    run = await web.app.job_runs.get(GetJobRun(id=job["id"]))
    execution_id = run["runs"][0]["executionId"]
    store = web.app.engine.store
    # Another live process on this host (this pid, another owner): never taken over.
    elsewhere = f"{web.app.engine.owner.rsplit(':', 1)[0]}:elsewhere"
    epoch = await store.acquire_lease(execution_id, elsewhere, timedelta(minutes=5))
    assert epoch is not None
    answered = asyncio.Event()

    async def hold() -> bool:
        """Hold the execution until the cancel is answered (at most 20 s: then let go,
        which the old watch took over at); whether it was answered while held."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered.wait(), timeout=20)
        held_throughout = answered.is_set()
        await store.release_lease(execution_id, epoch)
        return held_throughout

    holder = asyncio.create_task(hold())
    url = f"/job-runs/{job['id']}"
    http = await web.sign_in("operator")
    csrf = await web.csrf(url)
    cancelled = await http.post(f"{url}/cancel", data={"csrf": csrf, "reason": "not now"})
    answered.set()
    assert await holder, "the cancel waited for the other process to let go"
    assert cancelled.status_code == 303 and cancelled.headers["location"] == url
    shown = (await http.get(url)).text
    assert 'id="pending-cancel"' in shown and "Cancelling" in shown
    assert 'id="cancel-open"' not in shown  # not sent twice
    assert (await web.app.job_runs.get(GetJobRun(id=job["id"])))["status"] == "AwaitingUserInput"
    await web.app.engine.drive(execution_id)  # the holder (here: a worker) takes it
    after = await web.app.job_runs.get(GetJobRun(id=job["id"]))
    assert after["status"] == "Cancelled"
    execution = await web.app.executions.get(GetExecution(id=execution_id))
    assert execution["error"]["message"] == "cancelled: not now"
    assert 'id="pending-cancel"' not in (await http.get(url)).text


async def test_a_cancel_reason_over_the_limit_is_refused_by_both_pages_and_the_api(
    web: Web,
) -> None:
    """Cancel reasons had no length limit. The application refuses one over 1,000
    characters (app.models.MAX_CANCEL_REASON): the pages show its message (422) and their
    forms stop at that length, the API answers 422; nothing is recorded."""
    waiting = await web.start("ask", {"n": 1})
    job = await web.app.job_runs.create(
        CreateJobRun(
            text="name: nightly\nworkflows:\n  - {workflow: ask, input: {n: 3}}\n", hold=True
        )
    )
    await web.app.job_runs.drive(DriveJobRun(id=job["id"]))  # it waits for a person
    run = await web.app.job_runs.get(GetJobRun(id=job["id"]))
    said = "reason: must have at most 1,000 characters, not 1,001"
    http = await web.sign_in("operator")
    for url in (f"/executions/{waiting}", f"/job-runs/{job['id']}"):
        assert 'name="reason" maxlength="1000"' in (await http.get(url)).text
        csrf = await web.csrf(url)
        refused = await http.post(f"{url}/cancel", data={"csrf": csrf, "reason": "r" * 1_001})
        assert refused.status_code == 422 and 'id="action-error"' in refused.text
        assert said in html.unescape(refused.text)
    bearer = {"Authorization": f"Bearer {web.tokens['operator']}"}
    api = await http.post(
        f"/api/v1/executions/{waiting}/cancel", json={"reason": "r" * 1_001}, headers=bearer
    )
    assert api.status_code == 422 and said in api.text, api.text
    for execution_id in (waiting, run["runs"][0]["executionId"]):
        doc = await web.app.executions.get(GetExecution(id=execution_id))
        assert doc["runtimeStatus"] == "AwaitingUserInput" and "pendingSignals" not in doc


async def test_input_retry_rerun_start_and_console(web: Web) -> None:
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("operator")
    csrf = await web.csrf()
    url = f"/executions/{waiting}/steps/approve/input"
    bad = await http.post(url, data={"csrf": csrf, "ok": "true", "count": "0"})
    assert bad.status_code == 422 and "minimum" in bad.text
    # The field the schema refused is marked (its path comes with the error).
    marked = re.findall(r'<div class="field invalid">\s*<label for="([^"]+)"', bad.text)
    assert marked == ["in-approve-count"]
    typo = await http.post(url, data={"csrf": csrf, "ok": "true", "count": "many"})
    assert typo.status_code == 422 and "not a valid integer" in typo.text
    good = await http.post(url, data={"csrf": csrf, "ok": "true", "count": "2", "tags": '["x"]'})
    assert good.status_code == 303
    done = await web.app.engine.drive(waiting)
    assert done["runtimeStatus"] == "Completed"

    failed = await web.start("boom")
    retried = await http.post(f"/executions/{failed}/retry", data={"csrf": csrf})
    assert retried.status_code == 303
    await web.app.engine.drive(failed)
    rerun = await http.post(
        f"/executions/{failed}/rerun", data={"csrf": csrf, "from_step": "fail", "version": "x"}
    )
    assert rerun.status_code == 303 and rerun.headers["location"] != f"/executions/{failed}"
    nope = await http.post(f"/executions/{failed}/rerun", data={"csrf": csrf, "from_step": "zz"})
    # The status the API answers the same refusal with (app.statuses): no such step.
    assert nope.status_code == 404 and 'id="action-error"' in nope.text

    refused = await http.post("/workflows/ask/start", data={"csrf": csrf, "version": "1"})
    assert refused.status_code == 422 and "n" in refused.text
    wrong = await http.post("/workflows/ask/start", data={"csrf": csrf, "n": "2", "mode": "c"})
    assert wrong.status_code == 422 and "input.mode: &#39;c&#39; is not one of" in wrong.text
    marked = re.findall(r'<div class="field invalid">\s*<label for="([^"]+)"', wrong.text)
    assert marked == ["start-mode"]
    started = await http.post(
        "/workflows/ask/start",
        data={"csrf": csrf, "version": "1", "n": "4", "mode": "b", "correlation_id": "c-9"},
    )
    assert started.status_code == 303
    new_id = started.headers["location"].rsplit("/", 1)[1]
    doc = await web.app.executions.get(GetExecution(id=new_id))
    assert doc["trigger"]["arguments"] == {"n": 4, "mode": "b"} and doc["correlationId"] == "c-9"

    console = f"/executions/{waiting}/console"
    value = await http.post(console, data={"csrf": csrf, "expression": "{{ input.n + 1 }}"})
    assert value.status_code == 200 and "2" in value.text and "ok" in value.text
    error = await http.post(console, data={"csrf": csrf, "expression": "{{ nope }}"})
    assert "TemplateReferenceError" in error.text
    assert (await http.post(console, data={"expression": "{{ 1 }}"})).status_code == 403
    live = await http.get(f"/executions/{waiting}/live?after=1000")
    assert live.status_code == 204  # ended: EventSource stops reconnecting


async def test_console_busy_answers_429_in_its_place(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console evaluates one expression at a time (tour 20 F4); one typed meanwhile
    is refused with 429 and Retry-After, as a result the page shows where the value
    would be (app.js swaps it in)."""
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("viewer")
    csrf = await web.csrf()
    monkeypatch.setattr(console_module, "WAIT", 0.02, raising=False)
    url = f"/executions/{waiting}/console"
    costly = "{{ ((range(10000)|list)*10)" + "|map('string')" * 60 + "|list|length }}"
    first = asyncio.create_task(http.post(url, data={"csrf": csrf, "expression": costly}))
    turn = getattr(web.app.console, "_turn", None)
    for _ in range(1000):  # until the costly one has the console's turn
        if (turn is not None and turn.locked()) or first.done():
            break
        await asyncio.sleep(0.005)
    busy = await http.post(url, data={"csrf": csrf, "expression": "{{ input.n }}"})
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
    assert 'class="console-result failed"' in busy.text and "still evaluating" in busy.text
    done = await first
    assert done.status_code == 200 and "TemplateLimitError" in done.text


NULLABLE = """\
name: nullable
input_schema:
  type: object
  properties: {note: {type: [string, "null"]}, any: {type: [integer, string]}}
steps:
  - id: ask
    type: sys.wait_for_input
    input:
      prompt: "note?"
      schema:
        type: object
        properties: {note: {type: [string, "null"]}, n: {type: [integer, "null"]}}
        required: [note]
"""


async def test_forms_of_schemas_whose_types_are_lists(web: Web) -> None:
    """``type: [string, "null"]`` is plain JSON Schema: the start form and the input
    form are drawn (they answered 500), a nullable field as its type's field."""
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=NULLABLE)]))
    waiting = await web.start("nullable")
    http = await web.sign_in("operator")
    workflow_page = await http.get("/workflows/nullable")
    assert workflow_page.status_code == 200, workflow_page.text
    page = await http.get(f"/executions/{waiting}")
    assert page.status_code == 200, page.text
    csrf = await web.csrf()
    url = f"/executions/{waiting}/steps/ask/input"
    sent = await http.post(url, data={"csrf": csrf, "note": "hi", "n": "3"})
    assert sent.status_code == 303, sent.text
    done = await web.app.engine.drive(waiting)
    assert done["runtimeStatus"] == "Completed"
    [step] = [s for s in done["steps"].values() if s["stepId"] == "ask"]
    assert step["outputData"] == {"note": "hi", "n": 3}


async def test_a_wait_is_drawn_on_its_own_step_s_timeline_row(web: Web) -> None:
    """The second step's wait (a person) sits on the second row, not the first."""
    text = """\
name: second-waits
steps:
  - {id: first, type: sys.transform, input: {value: 1}}
  - {id: ask, type: sys.wait_for_input, input: {prompt: "ok?"}}
"""
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    waiting = await web.start("second-waits")
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{waiting}")).text
    rows = re.findall(
        r'<li class="bar [^"]+"><span class="what" title="(\w+)">(.*?)</li>', page, re.S
    )
    waits = {name: re.findall(r'<rect class="(wait|backoff)"', row) for name, row in rows}
    assert waits == {"first": [], "ask": ["wait"]}


async def test_a_late_retry_s_idle_hour_is_a_marked_break_on_the_timeline(web: Web) -> None:
    """Retried an hour after it failed in a second, its attempts were slivers at the two
    ends of the timeline (on-call tour): the idle hour is drawn narrow, and said."""
    failed = await web.start("boom")
    web.app.engine.clock.offset = timedelta(hours=1)
    retried = await web.app.executions.retry(RetryExecution(id=failed, settle=True))
    assert retried.execution["runtimeStatus"] == "Failed"
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{failed}")).text
    said = re.search(r'<p class="meta" id="timeline-breaks">([^<]+)</p>', page)
    assert said and re.fullmatch(
        r"Drawn narrow, as nothing ran or waited then: (1h|59m\d\ds)\.", said[1]
    )
    rows = re.findall(
        r'<li class="bar [^"]+"><span class="what" title="([^"]+)">(.*?)</li>', page, re.S
    )
    assert [name for name, _ in rows] == ["first", "fail", "fail (attempt 2)"]
    gap, bar = (
        float(re.search(rf'<rect class="{kind}" x="([\d.]+)"', rows[2][1])[1])  # type: ignore[index]
        for kind in ("gap", "run")
    )
    assert bar == pytest.approx(gap + 24, abs=1)  # right after the break, not at the end


async def test_each_wait_of_a_loop_gets_a_form_that_answers_it(web: Web) -> None:
    """A step waiting in two loop iterations: two forms, each naming its step execution
    (both named the step, which the engine refuses as ambiguous)."""
    text = """\
name: loop-asks
steps:
  - id: each
    type: sys.loop
    input: {items: [a, b], concurrency: 2}
    steps:
      - id: ask
        type: sys.wait_for_input
        input:
          prompt: "ok for {{ loop.each.item }}?"
          schema: {type: object, properties: {ok: {type: boolean}}, required: [ok]}
"""
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    waiting = await web.start("loop-asks")
    http = await web.sign_in("operator")
    page = (await http.get(f"/executions/{waiting}")).text
    actions = re.findall(r'<form method="post" action="([^"]+/input)"', page)
    ids = re.findall(r'class="schema-form" id="([^"]+)"', page)
    assert len(actions) == 2 and len(set(actions)) == 2 and len(set(ids)) == 2, actions
    csrf = await web.csrf()
    for action in actions:
        sent = await http.post(action, data={"csrf": csrf, "ok": "true"})
        assert sent.status_code == 303, sent.text
    done = await web.app.engine.drive(waiting)
    assert done["runtimeStatus"] == "Completed"


async def test_the_page_of_an_until_loop_draws_its_iterations(web: Web) -> None:
    """A loop with until has no items: the page counts the iterations it ran, offers
    them in the iteration selector, and shows a chosen one's frame (``previous``)."""
    text = """\
name: poll-page
variables: {n: 0}
steps:
  - id: poll
    type: sys.loop
    input: {until: "{{ steps.bump.output.value >= 3 }}", max_iterations: 5}
    steps:
      - {id: bump, type: sys.set_variable, input: {name: n, op: increment}}
      - {id: nap, type: sys.delay, input: {duration: 5ms}}
"""
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    done = await web.start("poll-page")
    http = await web.sign_in("viewer")
    page = await http.get(f"/executions/{done}?iteration.poll=1")
    assert page.status_code == 200, page.text
    assert 'name="iteration.poll" min="0" max="2"' in page.text
    graph = re.search(r"data-graph='([^']+)'", page.text)
    assert graph
    nodes = {n["id"]: n for n in json.loads(html.unescape(graph.group(1)))["nodes"]}
    assert (nodes["poll"]["done"], nodes["poll"]["total"]) == (3, 3)
    assert nodes["poll"]["status"] == "Completed" and nodes["nap"]["status"] == "Completed"
    assert "previous" in page.text and "{{ steps.bump.output.value &gt;= 3 }}" in page.text


async def test_a_page_whose_session_ended_is_sent_to_sign_in(web: Web) -> None:
    """A page refreshing itself (htmx) got a 401 fragment that htmx does not swap: it
    went stale in silence. The answer now tells htmx to go to the sign-in page."""
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("operator")
    fragment = {"HX-Request": "true", "HX-Current-URL": f"http://ui/executions/{waiting}?x=1"}
    assert (await http.get(f"/executions/{waiting}", headers=fragment)).status_code == 200
    await web.app.tokens.revoke(RevokeToken(name="operator"))
    stale = await http.get(f"/executions/{waiting}", headers=fragment)
    assert stale.status_code == 401
    assert stale.headers["HX-Redirect"] == f"/signin?next=/executions/{waiting}%3Fx%3D1"
    page = await http.get(f"/executions/{waiting}")  # a whole page: redirected as before
    assert page.status_code == 303 and page.headers["location"].startswith("/signin?next=")


async def test_a_signed_out_cookie_no_longer_signs_in(web: Web) -> None:
    http = await web.sign_in("viewer")
    copied = http.cookies.get("flowledger_session")
    assert copied
    csrf = await web.csrf()
    assert (await http.post("/signout", data={"csrf": csrf})).status_code == 303
    http.cookies.set("flowledger_session", copied)
    page = await http.get("/executions")
    assert page.status_code == 303 and page.headers["location"].startswith("/signin")


async def test_bad_list_filters_are_told_in_words(web: Web) -> None:
    http = await web.sign_in("viewer")
    for query, said in (
        ("limit=abc", "limit: &#34;abc&#34; is not a whole number"),
        ("created_after=garbage", "created after: &#34;garbage&#34; is not a date and time"),
    ):
        page = await http.get(f"/executions?{query}")
        assert page.status_code == 200 and said in page.text, page.text[-2000:]
        assert "invalid literal" not in page.text and "isoformat" not in page.text


async def test_the_entity_filter_finds_numbers_and_booleans(web: Web) -> None:
    """Typing 7 found no ``Score: 7``: the filter compared the text "7"."""
    await web.app.entities.create_type(CreateEntityType(name="Typed"))
    for payload in ({"Score": 7, "On": True}, {"Score": "7", "On": "true"}, {"Score": 8}):
        await web.app.entities.create(CreateEntity(entity_type="Typed", payload=payload))
    http = await web.sign_in("viewer")

    async def found(field: str, value: str) -> int:
        page = await http.get("/entities", params={"type": "Typed", "field": field, "value": value})
        assert page.status_code == 200, page.text
        return page.text.count("<tr><td><code>")

    assert await found("Score", "7") == 2
    assert await found("On", "true") == 2
    assert await found("Score", "8") == 1


async def test_an_error_page_keeps_who_is_signed_in(web: Web) -> None:
    http = await web.sign_in("viewer")
    missing = await http.get("/executions/no-such-execution")
    assert missing.status_code == 404
    assert "Sign out" in missing.text and 'name="csrf"' in missing.text


async def test_a_number_that_is_not_one_is_told_in_words(web: Web) -> None:
    """?version=abc, ?after=zz and a start form's version answered 500."""
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("operator")
    for url in ("/workflows/ask?version=abc", f"/executions/{waiting}/live?after=zz"):
        answer = await http.get(url)
        assert answer.status_code == 422, (url, answer.status_code)
        assert "is not a whole number" in answer.text
    csrf = await web.csrf()
    start = await http.post("/workflows/ask/start", data={"csrf": csrf, "version": "abc"})
    assert start.status_code == 422 and "version" in start.text


SPOOF = """\
name: spoof
description: "Fails on purpose, \u202ewith a spoof"
steps:
  - id: ask
    type: sys.wait_for_input
    input:
      prompt: "Approve {{ input.m }}?"
      schema: {type: object, properties: {ok: {type: boolean}}, required: [ok]}
  - {id: boom, type: sys.fail, input: {message: "bad {{ input.m }}"}}
"""


async def test_bidi_controls_in_data_are_shown_escaped_and_stored_as_they_are(web: Web) -> None:
    """A right-to-left override in an input reversed the rest of its line on the page,
    the JSON around it included (Trojan Source); the command line already showed it."""
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=SPOOF)]))
    attack = "RED \u202eevil \x9b1m"
    waiting = await web.start("spoof", {"m": attack, "k\u202eey": 1})
    http = await web.sign_in("operator")
    csrf = await web.csrf()
    url = f"/executions/{waiting}/steps/ask/input"
    assert (await http.post(url, data={"csrf": csrf, "ok": "true"})).status_code == 303
    failed = await web.app.engine.drive(waiting)
    assert failed["runtimeStatus"] == "Failed"
    assert failed["error"] and failed["error"]["message"] == f"bad {attack}"  # stored as it came
    for path in (f"/executions/{waiting}", "/workflows/spoof", "/executions"):
        page = (await http.get(path)).text
        assert "\u202e" not in page and "\x9b" not in page, path
    page = (await http.get(f"/executions/{waiting}")).text
    assert "RED \\u202eevil \\u009b1m" in page  # the error, the events, the data store
    assert '<span class="key">k\\u202eey</span>' in page  # a key as much as a value
    answered = await web.start("spoof", {"m": attack})
    form = (await http.get(f"/executions/{answered}")).text
    assert '<p class="prompt">Approve RED \\u202eevil \\u009b1m?</p>' in form


async def test_times_in_lists_read_as_utc_with_the_exact_time_kept(web: Web) -> None:
    await web.start("boom")
    http = await web.sign_in("viewer")
    for path in ("/executions", "/workflows"):
        page = (await http.get(path)).text
        found = re.findall(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', page)
        assert found, path
        for stamp, title, shown in found:
            assert stamp == title and stamp.endswith("Z")
            assert shown == f"{stamp[:10]} {stamp[11:19]} UTC", shown  # no T, no millis


CHILD_ASKS = """\
name: child-asks
steps:
  - id: ask
    type: sys.wait_for_input
    input: {prompt: "ok?", schema: {type: object, properties: {ok: {type: boolean}}}}
"""
PARENT_OF_ASKS = """\
name: parent-of-asks
steps:
  - {id: kids, type: sys.sub_workflow, input: {workflow: child-asks}}
"""


async def test_a_parent_s_page_says_which_child_a_form_answers(web: Web) -> None:
    await web.app.workflows.push(
        PushWorkflows(texts=[WorkflowText(text=CHILD_ASKS), WorkflowText(text=PARENT_OF_ASKS)])
    )
    parent = await web.start("parent-of-asks")
    doc = await web.app.executions.get(GetExecution(id=parent))
    [child] = [c["id"] for s in doc["steps"].values() for c in s["childWorkflowExecutions"]]
    await web.app.engine.drive(child)
    http = await web.sign_in("operator")
    page = (await http.get(f"/executions/{parent}")).text
    assert f'action="/executions/{child}/steps/ask/input"' in page
    said = f'This answers child execution <a href="/executions/{child}">{child[:8]}</a>.'
    assert said in page
    assert "This answers child" not in (await http.get(f"/executions/{child}")).text


async def test_a_refused_answer_keeps_what_was_typed(web: Web) -> None:
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("operator")
    csrf = await web.csrf()
    url = f"/executions/{waiting}/steps/approve/input"
    typed = {"csrf": csrf, "ok": "false", "count": "many", "tags": '["x"]'}
    refused = await http.post(url, data=typed)
    assert refused.status_code == 422
    assert '<option value="false" selected>false</option>' in refused.text
    assert 'name="count" type="text" inputmode="decimal" value="many"' in refused.text
    assert "&#34;x&#34;]</textarea>" in refused.text
    # The page puts its own address back (app.js): a reload does not post again.
    assert f'data-here="/executions/{waiting}"' in refused.text
    started = await http.post("/workflows/ask/start", data={"csrf": csrf, "n": "x", "mode": "b"})
    assert started.status_code == 422
    assert 'value="x"' in started.text and '<option value="b" selected>b</option>' in started.text


async def test_sign_in_title_and_a_workflow_s_description(web: Web) -> None:
    page = (await web.http.get("/signin")).text
    assert "<title>Sign in · flowledger</title>" in page
    described = "name: described\ndescription: Greets <b>whoever</b> asks.\n" + (
        "steps:\n  - {id: greet, type: sys.transform, input: {value: hi}}\n"
    )
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=described)]))
    http = await web.sign_in("viewer")
    page = (await http.get("/workflows/described")).text
    assert '<p class="description">Greets &lt;b&gt;whoever&lt;/b&gt; asks.</p>' in page


async def test_a_waiting_execution_s_timeline_runs_to_now(web: Web) -> None:
    waiting = await web.start("ask", {"n": 1})
    web.app.engine.clock.offset = timedelta(minutes=5)
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{waiting}")).text
    heading = re.search(r'<h2 id="timeline-h">Timeline <span class="meta">([^<]+)</span>', page)
    # 5m and whatever the requests took: a loaded machine can take seconds over them.
    assert heading and re.fullmatch(r"5m([0-5]\ds)? so far", heading.group(1)), heading
    assert re.search(r"<title>waiting: 5m([0-5]\ds)? so far</title>", page)
    assert re.search(r"<title>approve: InProgress, 5m([0-5]\ds)? so far</title>", page)
    assert "hatched" not in page  # the waits are a translucent fill, and the legend says so


async def _push_chain(web: Web, name: str, length: int) -> str:
    """Push a chain of ``length`` sys.transform steps (s0, s1, …) named ``name``."""
    steps = "".join(
        f"  - {{id: s{i}, type: sys.transform, input: {{value: {i}}}}}\n" for i in range(length)
    )
    text = f"name: {name}\nsteps:\n{steps}"
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    return name


async def test_a_long_graph_s_page_says_what_it_leaves_out_and_shows_a_step_asked_for(
    web: Web,
) -> None:
    """A 3,000-step chain's page listed every attempt and data store entry: 7 MB."""
    done = await web.start(await _push_chain(web, "long", 130))
    http = await web.sign_in("viewer")
    page = html.unescape((await http.get(f"/executions/{done}")).text)
    assert page.count('<details class="attempt"') == 100
    assert (
        "30 earlier completed attempts are not listed (nor in the timeline), only the latest 100"
        in page
    )
    assert "The entries of 30 steps are left out here" in page
    assert 'name="step" value=""' in page
    one = html.unescape((await http.get(f"/executions/{done}?step=s7")).text)
    assert one.count('<details class="attempt"') == 1 and 'data-step="s7"' in one
    assert "Step attempts of s7" in one and 'name="step" value="s7"' in one
    none = html.unescape((await http.get(f"/executions/{done}?step=nope")).text)
    assert "This workflow has no step named nope: every step's attempts are listed." in none
    assert none.count('<details class="attempt"') == 100


async def test_the_rerun_hint_is_asked_for_the_step_picked(web: Web) -> None:
    """Every step's reused steps were written into the page (n²/2 ids for a chain of n:
    12 MB for 2,000 steps), in name order (s0, s1, s10, s100, …)."""
    execution_id = await web.start(await _push_chain(web, "chain60", 60))
    http = await web.sign_in("operator")
    shown = (await http.get(f"/executions/{execution_id}")).text
    named = ", ".join(f"s{i}" for i in range(20))
    assert f"Reuses the outputs of: {named} and 39 more</p>" in shown
    assert "data-rerun" not in shown
    picked = await http.get(f"/executions/{execution_id}/rerun-reuse", params={"from_step": "s3"})
    assert picked.status_code == 200 and "Reuses the outputs of: s0, s1, s2</p>" in picked.text
    first = await http.get(f"/executions/{execution_id}/rerun-reuse", params={"from_step": "s0"})
    assert "Reuses no outputs: everything runs again." in first.text
    unknown = await http.get(f"/executions/{execution_id}/rerun-reuse", params={"from_step": "x"})
    assert unknown.status_code == 404


async def test_an_artifact_of_any_name_downloads_from_the_page_and_the_api(
    web: Web, db_url: str
) -> None:
    """A name that is not Latin-1 (or, stored by an older version, with a quote, ``;`` or
    CR/LF) was a 500: both faces send the one RFC 6266 header of app.downloads."""
    execution = await web.start("boom")
    forged = 'a "b";\r\nX-Evil: 1.txt'
    saved = [
        await web.app.engine.artifacts.save(execution, None, None, name, b"data")
        for name in ("文件.txt", "étrange.html", "plain.txt")
    ]
    run_sql(db_url, "UPDATE artifacts SET name = :n WHERE id = :id", n=forged, id=saved[2]["id"])
    expected = {
        saved[0]["id"]: "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%96%87%E4%BB%B6.txt",
        saved[1]["id"]: "attachment; filename=\"_trange.html\"; filename*=UTF-8''%C3%A9trange.html",
        saved[2]["id"]: 'attachment; filename="a _b____X-Evil: 1.txt"; '
        "filename*=UTF-8''a%20%22b%22%3B%0D%0AX-Evil%3A%201.txt",
    }
    http = await web.sign_in("viewer")
    bearer = {"Authorization": f"Bearer {web.tokens['viewer']}"}
    for artifact_id, header in expected.items():
        for url, headers in ((f"/ui/artifacts/{artifact_id}", {}), (f"/api/v1/artifacts/{artifact_id}", bearer)):  # fmt: skip
            answer = await http.get(url, headers=headers)
            assert answer.status_code == 200, (url, answer.text)
            assert answer.content == b"data"
            assert answer.headers["content-disposition"] == header
            assert "x-evil" not in answer.headers


PIXEL = png()


def _artifact_item(page: str, artifact_id: str) -> str:
    found = re.search(rf'<li id="artifact-{artifact_id}">(.*?)</li>', page, re.S)
    assert found, page[-3000:]
    return found.group(1)


async def test_artifacts_show_their_size_and_small_ones_a_preview(web: Web) -> None:
    """The artifacts said neither their size nor what is in them: each had to be
    downloaded to be seen (on-call tour). Small texts, JSON and images are previewed,
    read and checked as the download is, bounded, escaped."""
    execution = await web.start("boom")
    save = web.app.engine.artifacts.save
    notes = await save(
        execution,
        None,
        "fetch",
        "notes.txt",
        f"{XSS_TEXT}\nline 2".encode(),
        "text/plain; charset=utf-8",
    )
    data = await save(
        execution, None, None, "data.json", b'{"b":[1,2],"a":"x"}', "application/json"
    )
    long = await save(execution, None, None, "long.txt", b"y" * 10_000, "text/plain")
    big = await save(execution, None, None, "big.log", b"z" * (100 * 1024), "text/plain")
    image = await save(execution, None, None, "pixel.png", PIXEL, "image/png")
    blob = await save(execution, None, None, "blob.bin", b"\x00" * 2048)
    binary = await save(execution, None, None, "nul.txt", b"a\x00b", "text/plain")
    damaged = await save(execution, None, None, "damaged.txt", b"as saved", "text/plain")
    web.app.engine.artifacts.path_of(execution, damaged["id"]).write_bytes(b"replaced")
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{execution}")).text
    item = _artifact_item(page, notes["id"])
    assert (
        f'<span class="size" title="{len(XSS_TEXT) + 7} bytes">{len(XSS_TEXT) + 7} bytes</span>'
        in item
    )
    assert "step fetch" in item
    assert f'<pre class="preview">{html.escape(XSS_TEXT, quote=False)}\nline 2</pre>' in item
    assert '<pre class="preview">{\n  &#34;b&#34;: [\n    1,' in _artifact_item(page, data["id"])
    item = _artifact_item(page, long["id"])
    assert "9.8 KiB" in item and "(the first 4096 characters; 5904 more in the download)" in item
    assert "y" * 4096 + "</pre>" in item and "y" * 4097 not in item
    item = _artifact_item(page, big["id"])
    assert "100.0 KiB" in item and "not previewed: over 64 KiB" in item and "<pre" not in item
    item = _artifact_item(page, image["id"])
    assert f'<img class="preview" src="/ui/artifacts/{image["id"]}/preview" alt="pixel.png"' in item
    item = _artifact_item(page, blob["id"])
    assert "2.0 KiB" in item and "preview" not in item.lower()
    assert "not previewed: it is not text" in _artifact_item(page, binary["id"])
    assert "not previewed: artifact" in _artifact_item(page, damaged["id"])
    assert "is damaged or was replaced" in _artifact_item(page, damaged["id"])
    assert XSS_TEXT not in page
    # The image, for the page's viewers: what the download reads, drawn inline.
    drawn = await http.get(f"/ui/artifacts/{image['id']}/preview")
    assert drawn.status_code == 200 and drawn.content == PIXEL
    assert drawn.headers["content-type"] == "image/png"
    assert drawn.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in drawn.headers
    for other in (blob, notes):  # no other type is served inline
        assert (await http.get(f"/ui/artifacts/{other['id']}/preview")).status_code == 404
    http.cookies.clear()
    assert (await http.get(f"/ui/artifacts/{image['id']}/preview")).status_code == 303


async def test_sign_in_while_the_database_does_not_answer_is_a_503(web: Web) -> None:
    """It was a 401, as if the token were wrong, while the API said 503."""
    await web.app.engine.store.close()  # what a database that does not answer looks like
    answer = await web.http.post("/signin", data={"token": web.tokens["viewer"]})
    assert answer.status_code == 503, answer.text
    assert "set-cookie" not in answer.headers


async def test_a_cancel_or_an_answer_no_worker_took_yet_is_shown_on_the_page(web: Web) -> None:
    """Tour 19, F10: with no worker, a cancel from the page left it as it was (its status,
    the same Cancel button, taken again at a second click): nothing told "recorded,
    waiting for a worker" from "nothing happened". The page says so now, to every role,
    and offers no second cancel; once a worker acted, the mark is gone."""
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("operator")
    csrf = await web.csrf()
    page = f"/executions/{waiting}"
    answered = await http.post(
        f"{page}/steps/approve/input", data={"csrf": csrf, "ok": "true", "count": "2"}
    )
    assert answered.status_code == 303
    shown = (await http.get(page)).text
    assert 'id="pending-input-approve"' in shown
    assert "Input for step approve recorded</strong> — waiting for a worker" in shown
    assert 'id="pending-cancel"' not in shown and 'id="cancel"' in shown

    assert (await http.post(f"{page}/cancel", data={"csrf": csrf})).status_code == 303
    shown = (await http.get(page)).text
    assert "<strong>Cancel requested</strong> — waiting for a worker to act on it" in shown
    assert 'id="cancel"' not in shown  # recorded once is enough
    viewer = await web.sign_in("viewer")
    assert 'id="pending-cancel"' in (await viewer.get(page)).text

    await web.app.engine.drive(waiting)  # a worker: the answer first, then the cancel
    shown = (await viewer.get(page)).text
    assert 'id="pending-cancel"' not in shown and 'id="pending-input-approve"' not in shown


PASS_THROUGH = """\
name: pass-through
steps:
  - {id: copy, type: sys.transform, input: {value: "{{ input.doc }}"}}
"""


async def test_only_this_executions_artifacts_are_links_on_its_page(web: Web) -> None:
    """Data shaped like an artifact reference (an input, a webhook body) was drawn as a
    download link, under a name and type its sender chose, to another execution's real
    artifact (tour 21). The step's output of that shape is this execution's artifact (the
    engine stores it so) and stays a link; the sender's dict is shown as data."""
    other = await web.start("boom")
    [saved] = [await web.app.engine.artifacts.save(other, None, None, "real.txt", b"secret")]
    forged = {
        "$artifact": {
            "id": saved["id"],
            "executionId": other,
            "name": "INVOICE-please-open.pdf",
            "contentType": "application/pdf",
            "size": 6,
            "sha256": "0" * 64,
        }
    }
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=PASS_THROUGH)]))
    execution_id = await web.start("pass-through", {"doc": forged})
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{execution_id}")).text
    assert f'href="/ui/artifacts/{saved["id"]}"' not in page  # the sender's: data
    assert "INVOICE-please-open.pdf</a>" not in page
    assert "copy.output.json</a>" in page  # the step's own output: a link


def _chip(page: str, status: str) -> tuple[str, int]:
    """A status chip's link and count."""
    found = re.search(
        rf'<a href="([^"]*)" class="badge s-{status}" data-count="{status}"[^>]*>'
        rf"{status} <strong>(\d+)</strong>",
        page,
    )
    assert found, page[-3000:]
    return html.unescape(found.group(1)), int(found.group(2))


async def test_the_status_chips_count_and_link_under_the_list_s_filters(web: Web) -> None:
    """The chips counted by workflow only (a time range left them at the totals) and
    their links dropped every other filter (tour 22B M7, L10)."""
    await web.start("boom")
    await web.app.executions.start(StartExecution(workflow="boom", correlation_id="c-1"))
    http = await web.sign_in("viewer")
    page = (await http.get("/executions?workflow=boom")).text
    assert _chip(page, "Failed")[1] == 1 and _chip(page, "NotStarted")[1] == 1
    long_ago = (await http.get("/executions?workflow=boom&created_before=2000-01-01T00:00")).text
    assert _chip(long_ago, "Failed")[1] == 0 and "No executions match." in long_ago
    page = (await http.get("/executions?workflow=boom&correlation_id=c-1&status=Failed")).text
    link, count = _chip(page, "NotStarted")
    assert count == 1 and _chip(page, "Failed")[1] == 0  # its own status aside
    assert link == "/executions?workflow=boom&correlation_id=c-1&status=NotStarted"
    assert 'href="/executions?workflow=boom&amp;correlation_id=c-1" class="chip"' in page


async def test_the_time_range_is_read_as_utc_and_says_so(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From/To were read in the server's zone while the list shows UTC (tour 22B M7)."""
    failed = await web.start("boom")
    doc = await web.app.executions.get(GetExecution(id=failed))
    created = datetime.fromisoformat(doc["createdAt"].replace("Z", "+00:00"))
    since = (created - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")  # as the widget sends
    http = await web.sign_in("viewer")
    monkeypatch.setenv("TZ", "America/New_York")  # a server west of UTC
    time.tzset()
    try:
        page = (await http.get(f"/executions?created_after={since}")).text
    finally:
        monkeypatch.undo()
        time.tzset()
    assert f'data-execution="{failed}"' in page
    assert "From (UTC) <input" in page and "To (UTC) <input" in page


async def test_the_list_says_why_executions_failed_and_who_started_them(web: Web) -> None:
    """The Failed list gave nothing to triage on, and a correlation id repeating the id
    took a third of the width (tour 22B M11); a parent was plain text (L10)."""
    await web.app.workflows.push(
        PushWorkflows(texts=[WorkflowText(text=CHILD_ASKS), WorkflowText(text=PARENT_OF_ASKS)])
    )
    failed = await web.start("boom")
    parent = await web.start("parent-of-asks")
    http = await web.sign_in("viewer")
    page = (await http.get("/executions?status=Failed")).text
    assert '<th scope="col">Error</th>' in page and '<th scope="col">Took</th>' in page
    assert "Correlation id</th>" not in page  # each is its execution's own id
    row = page[page.index(f'data-execution="{failed}"') :].split("</tr>")[0]
    assert '&lt;b&gt;bad&lt;/b&gt;</span> <span class="meta">at <code>fail</code>' in row
    assert re.search(r'<span title="ended \d{4}-\d\d-\d\d [\d:]{8} UTC">\d+ms</span>', row)
    children = (await http.get(f"/executions?parent_id={parent[:8]}")).text
    assert children.count("data-execution=") == 1
    said = f'<a href="/executions/{parent}" title="execution:{parent}">execution <code>'
    assert said + f"{parent[:8]}</code></a>" in children
    assert '<th scope="col">Error</th>' not in children  # nothing failed there
    await web.app.executions.start(StartExecution(workflow="boom", correlation_id="order-7"))
    page = (await http.get("/executions?workflow=boom")).text
    assert "Correlation id</th>" in page
    assert '<code class="name" title="order-7">order-7</code>' in page
    unknown = (await http.get("/executions?workflow=boo")).text
    assert "There is no workflow named &#39;boo&#39;; did you mean &#39;boom&#39;?" in unknown
    gone = (await http.get("/executions?parent_id=ffffffff")).text
    assert "no execution has an id starting with &#39;ffffffff&#39;" in gone


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-execution="([^"]+)">', page)


async def test_the_list_takes_several_statuses_and_top_level_only(web: Web) -> None:
    """The list's status filter took one value while the API takes several (on call:
    Failed and Cancelled together), and a parent's children could not be left out."""
    await web.app.workflows.push(
        PushWorkflows(texts=[WorkflowText(text=CHILD_ASKS), WorkflowText(text=PARENT_OF_ASKS)])
    )
    failed = await web.start("boom")
    cancelled = await web.start("ask", {"n": 1})
    await web.app.executions.cancel(CancelExecution(id=cancelled, settle=True))
    waiting = await web.start("ask", {"n": 2})
    parent = await web.start("parent-of-asks")
    http = await web.sign_in("viewer")
    page = (await http.get("/executions?status=Failed&status=Cancelled")).text
    assert _rows(page) == [cancelled, failed]
    for status in ("Failed", "Cancelled"):
        assert f'name="status" value="{status}" checked>' in page
        assert re.search(
            rf'class="badge s-{status}" data-count="{status}" aria-current="true"', page
        )
    assert 'value="AwaitingUserInput" checked' not in page
    assert 'data-count="AwaitingUserInput" aria-current' not in page
    assert 'data-count="" aria-current' not in page  # not "any status"
    # One text of several, as the API's status= takes them, reads the same.
    assert _rows((await http.get("/executions?status=Failed,Cancelled")).text) == _rows(page)
    # Paged on: the next page keeps both.
    first = (await http.get("/executions?status=Failed&status=Cancelled&limit=1")).text
    older = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert older and _rows(first) == [cancelled]
    assert "status=Failed&status=Cancelled&cursor=" in html.unescape(older.group(1))
    assert _rows((await http.get(html.unescape(older.group(1)))).text) == [failed]

    everything = _rows((await http.get("/executions")).text)
    (child,) = [e for e in everything if e not in (failed, cancelled, waiting, parent)]
    top = (await http.get("/executions?top_level=1")).text
    assert _rows(top) == [parent, waiting, cancelled, failed]  # not its child
    assert 'name="top_level" value="1" checked>' in top
    assert _chip(top, "AwaitingUserInput")[1] == 2  # the parent's child not counted
    assert _chip((await http.get("/executions")).text, "AwaitingUserInput")[1] == 3
    link, _ = _chip(top, "Failed")
    assert link == "/executions?top_level=1&status=Failed"  # a chip keeps it
    waiting_top = (await http.get("/executions?top_level=1&status=AwaitingUserInput")).text
    assert _rows(waiting_top) == [parent, waiting]
    assert child in _rows((await http.get("/executions?status=AwaitingUserInput")).text)
    both = (await http.get(f"/executions?top_level=1&parent_id={parent[:8]}")).text
    assert "give a parent or top-level only, not both" in both and _rows(both) == []


async def test_a_form_sent_after_the_session_ended_says_so_and_signs_in_back_to_it(
    web: Web,
) -> None:
    """It answered "sign in with an API token" with a link to /signin, no next (L6)."""
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("operator")
    csrf = await web.csrf(f"/executions/{waiting}")
    http.cookies.clear()  # the browser dropped the expired cookie
    sent_from = {"Referer": f"http://ui/executions/{waiting}?iteration=x:1"}
    url = f"/executions/{waiting}/steps/approve/input"
    refused = await http.post(url, data={"csrf": csrf, "ok": "true"}, headers=sent_from)
    assert refused.status_code == 401
    assert "Your session expired, so this form was not sent." in refused.text
    back = f"/executions/{waiting}%3Fiteration%3Dx%3A1"
    assert f'<a href="/signin?next={back}" data-session-ended>Sign in again</a>' in refused.text
    http.cookies.set("flowledger_session", "forged.value")
    elsewhere = {"Referer": "https://evil.example/executions"}
    forged = await http.post(url, data={"csrf": csrf, "ok": "true"}, headers=elsewhere)
    assert forged.status_code == 401
    assert "This form was not sent: the session is not valid; sign in again." in forged.text
    assert 'href="/signin?next=/executions"' in forged.text  # another site's page: not back


async def test_a_viewer_is_told_that_an_operator_answers_a_wait(web: Web) -> None:
    """A viewer saw the prompt and nothing else: no sign that someone else answers (L13)."""
    waiting = await web.start("ask", {"n": 1})
    hint = "an operator or an admin must answer it"
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{waiting}")).text
    assert "Waiting for an operator: as a viewer you can see this question" in page
    assert hint in page
    http = await web.sign_in("operator")
    assert hint not in (await http.get(f"/executions/{waiting}")).text


async def test_the_list_finds_executions_by_their_input(web: Web) -> None:
    """One PATH=VALUE field, kept by the chips' links; a bad one is said on the page."""
    wanted = await web.start("boom", {"orderId": 1234})
    other = await web.start("boom", {"orderId": "1234"})
    http = await web.sign_in("viewer")
    page = (await http.get("/executions", params={"input": "orderId=1234"})).text
    assert wanted in page and other not in page
    assert 'name="input" value="orderId=1234"' in page
    assert _chip(page, "Failed") == ("/executions?input=orderId%3D1234&status=Failed", 1)
    bad = await http.get("/executions", params={"input": "order id=1"})
    assert '"order id", which is not a key name' in html.unescape(bad.text)


async def test_a_page_that_fails_on_a_bug_says_so_in_a_page(
    web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug's exception answered a plain-text "Internal Server Error" (and, served, a
    dropped connection): now a page of the UI's, 500, its traceback in the log."""
    job = await web.app.job_runs.create(
        CreateJobRun(text="name: nightly\nworkflows:\n  - {workflow: boom}\n", hold=True)
    )

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(web.app.views, "job_run", broken)
    http = await web.sign_in("viewer")
    with caplog.at_level("ERROR", logger="flowledger.web.render"):
        answer = await http.get(f"/job-runs/{job['id']}")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>Something went wrong</h1>" in answer.text
    assert "This page failed (RuntimeError): a flowledger bug" in answer.text
    (record,) = [r for r in caplog.records if r.name == "flowledger.web.render"]
    assert record.exc_info and "a bug" in str(record.exc_info[1])
    assert (await http.get("/executions")).status_code == 200  # the UI goes on

"""The execution page in-process (httpx over ASGI, no browser), where an on-call engineer
finds why an execution failed (tour 22b): an attempt's step logs and traceback, the
child a sub-workflow failed in, a data store tree that stays small, a cancel that asks
first and reads as one, short ids."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from flowledger.app import (
    App,
    CreateToken,
    GetExecution,
    PushWorkflows,
    RunExecution,
    StartExecution,
    WorkflowText,
)
from flowledger.web import execution as execution_page
from tests.web.fast_routes import WebApps
from tests.web.test_pages import ASK, ROLES, Web


class Numbered(BaseModel):
    n: int
    token: str = ""


class Said(BaseModel):
    n: int


def registry() -> StepRegistry:
    found = StepRegistry.with_builtins()

    @step_type("test.boom", secret_fields=["token"])
    async def boom(data: Numbered, ctx: StepContext) -> Said:
        ctx.logger.warning("about to fail on %d with %s", data.n, data.token)
        ctx.logger.info("second line")
        return {}["missing_key"]  # type: ignore[no-any-return]

    @step_type("test.picky")
    async def picky(data: Numbered, ctx: StepContext) -> Said:
        if data.n == 2:
            raise StepError("two is refused", retryable=False)
        return Said(n=data.n)

    found.register(boom)
    found.register(picky)
    return found


@pytest.fixture
async def web(
    db_url: str, monkeypatch: pytest.MonkeyPatch, web_apps: WebApps
) -> AsyncIterator[Web]:
    monkeypatch.setenv("FLOWLEDGER_SECRET_WEB_TOKEN", "tok-5ecret-value")
    engine = Engine(db_url, registry=registry())
    async with engine, App(engine=engine) as app:
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASK)]))
        tokens = {
            role: (await app.tokens.create(CreateToken(name=role, role=role)))["token"]
            for role in ROLES
        }
        transport = httpx.ASGITransport(app=web_apps.web_api(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as http:
            yield Web(app, http, tokens)


BOOM = """\
name: boom
steps:
  - {id: first, type: sys.transform, input: {value: 1}}
  - id: explode
    type: test.boom
    input: {n: 7, token: "{{ secrets.WEB_TOKEN }}"}
    after: [first]
"""


async def run(web: Web, text: str, data: dict[str, object] | None = None) -> str:
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    name = text.split("\n", 1)[0].removeprefix("name: ")
    doc = await web.app.executions.run(RunExecution(workflow=name, input=data or {}))
    return doc["id"]


async def test_an_attempt_shows_its_log_lines_and_traceback_to_a_viewer(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tour 22b H1: a custom step that raised showed only ``KeyError: 'missing_key'``;
    its traceback and its ctx.logger lines were only in the API and the CLI."""
    failed = await run(web, BOOM)
    doc = await web.app.executions.get(GetExecution(id=failed))
    [attempt] = [s["id"] for s in doc["steps"].values() if s["stepId"] == "explode"]
    logs = f"/executions/{failed}/attempts/{attempt}/logs"
    http = await web.sign_in("viewer")  # the API's GET …/logs is a viewer's too
    page = (await http.get(f"/executions/{failed}")).text
    assert f'<a href="{logs}">Log lines</a>' in page  # fetched when opened, not with the page
    assert f'<a href="{logs}" id="failed-logs">' in page  # from the error, in one click
    assert "Traceback" not in page
    part = await http.get(logs, headers={"HX-Request": "true"})
    assert part.status_code == 200 and "<h1>" not in part.text
    text = html.unescape(part.text)
    assert "WARNING about to fail on 7 with ***secrets.WEB_TOKEN***" in text
    assert "Traceback (most recent call last)" in text and "KeyError: 'missing_key'" in text
    assert "5ecret" not in text
    whole = await http.get(logs)  # without script: a page of its own
    assert "<h1>Log lines of step explode, attempt 1</h1>" in whole.text
    assert "second line" in whole.text

    monkeypatch.setattr(execution_page, "LOG_LINES", 1)  # bounded: a link pages on
    first = html.unescape((await http.get(logs, headers={"HX-Request": "true"})).text)
    assert "about to fail" in first and "second line" not in first
    following = re.search(r'href="([^"]+\?cursor=[^"]+)">the next ones', first)
    assert following, first
    assert "second line" in (await http.get(following.group(1))).text

    empty = await http.get(f"/executions/{failed}/attempts/nope/logs")
    assert empty.status_code == 200 and "This attempt logged nothing" in empty.text
    assert (await http.get(f"/executions/nope/attempts/{attempt}/logs")).status_code == 404
    web.http.cookies.clear()
    assert (await web.http.get(logs)).status_code == 303  # signed out: to sign in


CHILD = """\
name: scored
input_schema: {type: object, properties: {n: {type: integer}}}
steps:
  - id: too_big
    type: sys.fail
    when: "{{ input.n > 1 }}"
    input: {message: "{{ input.n }} is too big"}
"""
SCORES = """\
name: scores
steps:
  - id: each
    type: sys.sub_workflow
    input: {workflow: scored, items: [0, 1, 2], concurrency: 1, input: {n: "{{ loop.each.item }}"}}
"""


async def test_a_failed_sub_workflow_links_the_child_that_failed(web: Web) -> None:
    """Tour 22b M2 and L8: the graph linked the first child (Completed), the error named
    the failed one as text, the attempt's children had no status, and the child input's
    template row showed the template as its value."""
    await web.app.workflows.push(PushWorkflows(texts=[WorkflowText(text=CHILD)]))
    parent = await run(web, SCORES)
    doc = await web.app.executions.get(GetExecution(id=parent))
    failed = doc["error"]["details"]["childWorkflowExecutionId"]
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{parent}")).text
    linked = f'<a href="/executions/{failed}" class="failed-child">{failed[:8]}</a>'
    assert f"Failed in child execution {linked}." in page  # the error box and the attempt's
    assert page.count(linked) == 2
    drawn = re.search(r"data-graph='([^']+)'", page)
    assert drawn
    [node] = [n for n in json.loads(html.unescape(drawn.group(1)))["nodes"] if n["id"] == "each"]
    assert (node["child"], node["childFailed"]) == (failed, True) and "children" not in node
    assert "3: 2 Completed, 1 Failed" in page
    listed = re.findall(r'<li><span class="badge s-(\w+)">\w+</span> <a href="/executions/', page)
    assert listed == ["Failed", "Completed", "Completed"]
    row = re.search(r"<code>input\.input\.n</code></td>.*?</tr>", page)
    assert (
        row and '<span class="meta">per child:</span> <code class="value">[0, 1, 2]' in row.group(0)
    )


JUDGED = """\
name: judged
steps:
  - id: each
    type: sys.loop
    input: {items: [0, 1, 2, 3]}
    steps:
      - {id: picky, type: test.picky, input: {n: "{{ loop.each.item }}"}, continue_on_error: true}
"""


async def test_a_step_that_failed_in_some_iterations_and_went_on_says_so(web: Web) -> None:
    """Tour 22b M3: drawn plain red (Failed) in a Completed execution."""
    done = await run(web, JUDGED)
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{done}")).text
    drawn = re.search(r"data-graph='([^']+)'", page)
    assert drawn
    nodes = {n["id"]: n for n in json.loads(html.unescape(drawn.group(1)))["nodes"]}
    assert nodes["picky"]["status"] == "Completed" and nodes["picky"]["failedIterations"] == 1
    assert "completed with N failed iterations" in page  # the legend, where it applies
    plain = (await http.get(f"/executions/{await run(web, BOOM)}")).text
    assert "completed with N failed iterations" not in plain


REFUSED = """\
name: refused
steps:
  - {id: picky, type: test.picky, input: {n: 2}, retry: {max_attempts: 3, initial_delay: 1ms}}
"""


async def test_a_failed_attempt_says_why_its_retry_policy_did_not_retry_it(web: Web) -> None:
    """run, watch and events print a failed step's ``notRetried``; the page did not."""
    failed = await run(web, REFUSED)
    doc = await web.app.executions.get(GetExecution(id=failed))
    [attempt] = [s["id"] for s in doc["steps"].values() if s["stepId"] == "picky"]
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{failed}")).text
    said = re.search(rf'<p class="not-retried" id="not-retried-{attempt}">(.*?)</p>', page)
    assert said and said.group(1) == "<strong>Not retried:</strong> the failure is not retryable"


BIG = """\
name: big
steps:
  - id: lp
    type: sys.loop
    input: {items: "{{ range(300) | list }}", concurrency: 20}
    steps:
      - {id: inner, type: sys.transform, input: {value: {got: "{{ loop.lp.item }}"}}}
"""


async def test_a_large_loop_s_data_store_is_bounded_and_says_what_it_leaves_out(
    web: Web,
) -> None:
    """Tour 22b M4: every loop's results were drawn whole (a 3 x 120 nested loop: 2,830
    collapsed entries, 1 MB of a 1.5 MB page)."""
    done = await run(web, BIG)
    http = await web.sign_in("viewer")
    page = (await http.get(f"/executions/{done}")).text
    store = page[page.index('id="store-h"') : page.index('id="events-h"')]
    assert store.count('<details class="tree"') < 150, store.count('<details class="tree"')
    assert len(store) < 60_000, len(store)
    assert 'id="store-left-out"' in store
    left = 300 - 20  # app.store_tree.STORE_ENTRIES of a list are shown
    shown = html.unescape(store)
    assert f"… {left} more items not shown: the console reads them" in shown
    assert "<code>{{ steps.lp.output.results[20] }}</code>" in shown


async def test_cancel_asks_first_takes_a_reason_and_reads_as_a_cancel(web: Web) -> None:
    """Tour 22b M6 and L11: one click cancelled, with no reason; the reason was then
    shown under a red Error heading."""
    waiting = await web.start("ask", {"n": 1})
    http = await web.sign_in("operator")
    page = (await http.get(f"/executions/{waiting}")).text
    confirm = re.search(r'<details class="confirm".*?</details>', page, re.S)
    assert confirm, page
    assert '<summary class="danger" id="cancel-open">Cancel execution…</summary>' in confirm[0]
    assert 'name="reason"' in confirm[0] and 'id="cancel"' in confirm[0]
    csrf = await web.csrf()
    sent = await http.post(
        f"/executions/{waiting}/cancel", data={"csrf": csrf, "reason": "  duplicate order "}
    )
    assert sent.status_code == 303
    await web.app.engine.drive(waiting)
    doc = await web.app.executions.get(GetExecution(id=waiting))
    assert doc["runtimeStatus"] == "Cancelled"
    assert doc["error"] == {
        "message": "cancelled: duplicate order",
        "cancelledBy": "api-token:operator",
    }
    page = (await http.get(f"/executions/{waiting}")).text
    said = re.search(
        r'<div class="notice cancelled" role="status" id="cancellation">(.*?)</div>', page
    )
    assert said and "<strong>Cancelled</strong> by api-token:operator, <time" in said[1]
    assert said[1].endswith(": <q>duplicate order</q>")
    assert "<strong>Error</strong>" not in page


async def test_a_short_id_goes_to_its_execution_and_one_several_start_lists_them(
    web: Web,
) -> None:
    """Tour 22b L7: ``/executions/abd61694`` was a 404 (the page shows 8 characters, the
    CLI takes prefixes), and the 404 page offered to sign in to someone signed in."""
    ids = [
        (await web.app.executions.start(StartExecution(workflow="ask", input={"n": i})))["id"]
        for i in range(17)  # two share their first hexadecimal digit
    ]
    http = await web.sign_in("viewer")
    short = await http.get(f"/executions/{ids[0][:8]}?step=approve")
    assert short.status_code == 303
    assert short.headers["location"] == f"/executions/{ids[0]}?step=approve"
    shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
    several = await http.get(f"/executions/{shared}")
    assert several.status_code == 300
    listed = re.findall(r'<li><a href="/executions/([^"]+)">', several.text)
    assert sorted(listed) == sorted(i for i in ids if i.startswith(shared))
    missing = await http.get("/executions/zzzz")
    assert missing.status_code == 404 and "execution zzzz does not exist" in missing.text
    assert 'href="/signin"' not in missing.text and "Sign out" in missing.text

"""The web UI in a real browser against a real server: sign-in, every page, live
updates, the actions by role, the console, escaping, CSRF and CSP."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from flowledger.runtime.status import ExecutionStatus
from tests import tls
from tests.api.conftest import REPO, Service
from tests.api.helpers import push as push_from
from tests.api.helpers import settled, start, terminal, unique
from tests.inprocess import run_in_process
from tests.steps.http_server import serve
from tests.web.gateway import gateway
from tests.web.images import png

# What a page waits for is a worker on a machine that CI shares (other tests, a browser,
# coverage): Playwright's 5 s default is a wall-clock bound the suite must not depend on.
expect.set_options(timeout=30_000)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FORM = """
name: {name}
steps:
  - id: approve
    type: sys.wait_for_input
    input:
      prompt: "Ship <b>it</b>?"
      assignee: ops
      schema:
        type: object
        properties:
          approved: {{type: boolean}}
          amount: {{type: integer, minimum: 1}}
          channel: {{type: string, enum: [mail, chat], default: chat}}
        required: [approved, amount]
  - {{id: done, type: sys.transform, input: {{value: "{{{{ steps.approve.output.amount }}}}"}}}}
"""
CHAIN = """
name: {name}
input_schema:
  type: object
  properties: {{text: {{type: string}}}}
steps:
  - {{id: first, type: sys.transform, input: {{value: "{{{{ input.text }}}}"}}}}
  - {{id: second, type: sys.transform, input: {{value: {{said: "{{{{ steps.first.output }}}}"}}}}}}
  - {{id: third, type: sys.transform, input: {{value: 3}}}}
"""
SLOW = """
name: {name}
steps:
  - {{id: nap, type: sys.delay, input: {{duration: 1500ms}}}}
  - {{id: after, type: sys.transform, input: {{value: done}}}}
"""
FAILING = """
name: {name}
steps:
  - {{id: boom, type: sys.fail, input: {{message: "on purpose"}}}}
"""
BLOB = """
name: {name}
steps:
  - {{id: blob, type: sys.transform, input: {{value: {{text: "{{{{ 'x' * 5000 }}}}"}}}}}}
"""
XSS = "<script>alert(1)</script>"


def push(service: Service, template: str) -> str:
    name = unique("ui")
    with service.client("admin") as http:
        answer = http.post(
            "/api/v1/workflows",
            content=textwrap.dedent(template.format(name=name)),
            headers={"Content-Type": "application/yaml"},
        )
    assert answer.status_code == 201, answer.text
    return name


def run(service: Service, template: str, input: dict[str, Any] | None = None) -> str:
    name = push(service, template)
    with service.client("operator") as http:
        doc = start(http, name, input)
        settled(http, doc["id"])
    return str(doc["id"])


Pages = Callable[[str], Page]


@pytest.fixture(scope="module")
def sessions() -> dict[str, Any]:
    """Each role's signed-in cookies, made once per module by posting the sign-in form:
    signing in costs a second or two of page loads, paid by every test otherwise (the
    form itself is tested in test_sign_in_exchanges_the_token_...). No test signs these
    sessions out: one that signs out signs in on its own page first."""
    return {}


@pytest.fixture
def pages(browser: Browser, ui: Service, sessions: dict[str, Any]) -> Iterator[Pages]:
    """``pages(role)``: a signed-in page of its own (a context of its own, with the role's
    session cookie). Afterwards: no request went to any host but the server, and no
    script error or CSP violation was logged."""
    contexts = []
    strangers: list[str] = []
    problems: list[str] = []

    def open_page(role: str) -> Page:
        context = browser.new_context(base_url=ui.base_url, storage_state=sessions.get(role))
        contexts.append(context)
        page = context.new_page()
        page.on(
            "request",
            lambda r: None if r.url.startswith((ui.base_url, "data:")) else strangers.append(r.url),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "console",
            lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
        if role and role not in sessions:
            # The form's POST alone, its pages not drawn (the form in a browser is
            # test_sign_in_exchanges_the_token_...'s subject); the cookie is the context's.
            signed = context.request.post(
                "/signin", form={"token": ui.tokens[role]}, max_redirects=0
            )
            assert signed.status == 303, signed.text()
            sessions[role] = context.storage_state()
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert strangers == []
    assert problems == []


def sign_in(page: Page, token: str) -> None:
    page.goto("/executions")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.fill("#token", token)
    page.click("form[action='/signin'] button")
    expect(page).to_have_url(re.compile(r"^[^?]*/executions$"))  # not /signin?next=/executions


def test_sign_in_exchanges_the_token_for_a_strict_http_only_cookie(
    pages: Pages, ui: Service
) -> None:
    page = pages("")
    page.goto("/signin")
    page.fill("#token", "flt_not-a-token")
    page.click("form[action='/signin'] button")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page = pages("")  # a session of its own: it is signed out below
    sign_in(page, ui.tokens["viewer"])
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "flowledger_session"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "flt_" not in cookie["value"]  # the token's hash is signed, never the secret
    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto("/executions")
    expect(page).to_have_url(re.compile(r"/signin\?next="))


def test_every_page_renders_with_a_strict_csp(pages: Pages, ui: Service) -> None:
    name = push(ui, CHAIN)
    with ui.client("admin") as http:
        changed = CHAIN.replace("value: 3", "value: 4")
        http.post(
            "/api/v1/workflows",
            content=textwrap.dedent(changed.format(name=name)),
            headers={"Content-Type": "application/yaml"},
        )
    page = pages("admin")
    answer = page.goto("/executions")
    assert answer is not None
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    expect(page.locator("ul.counts")).to_contain_text("Completed")
    page.goto("/workflows")
    expect(page.get_by_role("link", name=name)).to_be_visible()
    page.goto(f"/workflows/{name}")
    expect(page.locator(".graph-svg .node")).to_have_count(3)
    page.get_by_role("link", name="diff v1 → v2").click()
    expect(page.locator("pre.diff .add").last).to_contain_text("value: 4")
    for path, heading in (
        ("/job-runs", "Job runs"),
        ("/entities", "Entities"),
        ("/subscriptions", "Subscriptions"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def test_start_form_from_the_input_schema(pages: Pages, ui: Service) -> None:
    name = push(ui, CHAIN)
    page = pages("operator")
    page.goto(f"/workflows/{name}")
    page.fill("#start-text", "from the form")
    page.click("#start-form button")
    expect(page).to_have_url(re.compile(r"/executions/[0-9a-f-]{36}$"))
    expect(page.locator("#status")).to_contain_text("Completed")
    expect(page.locator("details.tree").first).to_contain_text("from the form")


def test_live_updates_while_a_worker_runs(pages: Pages, ui: Service) -> None:
    name = push(ui, SLOW)
    listing = pages("viewer")
    listing.goto(f"/executions?workflow={name}")
    listing.evaluate("window.notReloaded = true")
    # Two executions at once, one the list follows and one its own page follows (in a
    # tab of its own): their naps overlap instead of running one after the other.
    with ui.client("operator") as http:
        listed = start(http, name)["id"]
        followed = start(http, name)["id"]
    # The execution page follows its own events too.
    page = pages("viewer")
    page.goto(f"/executions/{followed}")
    page.evaluate("window.notReloaded = true")
    nap = page.locator('details.attempt[data-step="nap"]')
    nap.locator("summary").click()  # what the reader opened stays open across refreshes
    row = listing.locator(f'tr[data-execution="{listed}"]')
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_contain_text("Completed", timeout=15_000)
    assert listing.evaluate("window.notReloaded") is True
    expect(page.locator("#status")).to_contain_text("Completed", timeout=15_000)
    expect(nap).to_have_attribute("open", "")
    expect(page.locator("ul.timeline rect.wait")).to_have_count(1)
    expect(page.locator("table.events")).to_contain_text("execution.completed")
    assert page.evaluate("window.notReloaded") is True


def test_human_input_form_refuses_invalid_data_then_accepts_valid(
    pages: Pages, ui: Service
) -> None:
    execution_id = run(ui, FORM)
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    form = page.locator("#input-approve")
    expect(page.locator(".prompt")).to_have_text("Ship <b>it</b>?")
    expect(form.locator("select[name=channel]")).to_have_value("chat")
    form.locator("select[name=approved]").select_option("true")
    form.locator("input[name=amount]").fill("0")
    form.locator("button").click()
    expect(page.locator("#input-error")).to_contain_text("minimum")
    # What was typed is still there, at the page's own address (a reload posts nothing).
    expect(page).to_have_url(re.compile(f"/executions/{execution_id}$"))
    form = page.locator("#input-approve")
    expect(form.locator("input[name=amount]")).to_have_value("0")
    expect(form.locator("select[name=approved]")).to_have_value("true")
    form.locator("select[name=approved]").select_option("true")
    form.locator("input[name=amount]").fill("7")
    form.locator("button").click()
    with ui.client("viewer") as http:
        doc = terminal(http, execution_id)
    assert doc["runtimeStatus"] == "Completed"
    outputs = {s["stepId"]: s["outputData"] for s in doc["steps"].values()}
    assert outputs["approve"] == {"approved": True, "amount": 7, "channel": "chat"}


def test_cancel(pages: Pages, ui: Service) -> None:
    """It asks first, and takes a reason (tour 22b M6: one click cancelled); the reason
    then reads as a cancel, not under an Error heading (L11)."""
    execution_id = run(ui, FORM)
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("#cancel")).to_be_hidden()  # a first click only asks
    page.click("#cancel-open")
    page.fill("#cancel-reason", "wrong batch")
    # The form's POST and the page it redirects to, done before the page is reloaded (a
    # reload while that navigation is under way fails: "Not attached to an active page").
    with page.expect_navigation():
        page.click("#cancel")
    with ui.client("viewer") as http:
        doc = terminal(http, execution_id)
    assert doc["runtimeStatus"] == "Cancelled"
    assert doc["error"]["message"] == "cancelled: wrong batch"
    page.reload()
    expect(page.locator("#status")).to_contain_text("Cancelled")
    expect(page.locator("#cancel-open")).to_have_count(0)
    expect(page.locator("#cancellation")).to_contain_text("Cancelled by api-token:t-operator")
    expect(page.locator("#cancellation")).to_contain_text("wrong batch")
    expect(page.locator(".exec-head .error")).to_have_count(0)


def test_cancel_asks_first_without_javascript_too(browser: Browser, ui: Service) -> None:
    execution_id = run(ui, FORM)
    context = browser.new_context(base_url=ui.base_url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/signin")
        page.fill("#token", ui.tokens["operator"])
        page.click("form[action='/signin'] button")
        page.goto(f"/executions/{execution_id}")
        expect(page.locator("#cancel")).to_be_hidden()
        page.click("#cancel-open")
        page.fill("#cancel-reason", "no script")
        with page.expect_navigation():
            page.click("#cancel")
        with ui.client("viewer") as http:
            doc = terminal(http, execution_id)
        assert doc["error"]["message"] == "cancelled: no script"
    finally:
        context.close()


def test_a_job_run_is_cancelled_from_its_page_without_javascript(
    browser: Browser, ui: Service
) -> None:
    """The job-run page had no cancel (on-call tour): it asks first, as the execution
    page's does, with no script."""
    name = push(ui, FORM)
    with ui.client("operator") as http:
        answer = http.post(
            "/api/v1/job-runs",
            content=f"name: nightly\nworkflows:\n  - {{workflow: {name}}}\n",
            headers={"Content-Type": "application/yaml"},
        )
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # its workflow started and waits for a person
            run = http.get(f"/api/v1/job-runs/{job_id}").json()["runs"][0]
            if run["runtimeStatus"] == "AwaitingUserInput":
                break
            time.sleep(0.1)
    context = browser.new_context(base_url=ui.base_url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/signin")
        page.fill("#token", ui.tokens["operator"])
        page.click("form[action='/signin'] button")
        page.goto(f"/job-runs/{job_id}")
        expect(page.locator("#cancel")).to_be_hidden()  # a first click only asks
        page.click("#cancel-open")
        page.fill("#cancel-reason", "not tonight")
        with page.expect_navigation():
            page.click("#cancel")
        expect(page).to_have_url(re.compile(f"/job-runs/{job_id}$"))
        # Answered once recorded: "Cancelling" (or already Cancelled) and no second cancel.
        expect(page.locator("#pending-cancel, h1 .badge:text-is('Cancelled')")).not_to_have_count(0)
        expect(page.locator("#cancel-open")).to_have_count(0)
        with ui.client("viewer") as http:
            execution = terminal(http, run["executionId"])  # the workers took the cancel
        assert execution["error"]["message"] == "cancelled: not tonight"
        page.reload()
        expect(page.locator("h1 .badge")).to_have_text("Cancelled")
        expect(page.locator("#pending-cancel")).to_have_count(0)
    finally:
        context.close()


def test_retry_runs_the_failed_step_again(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, FAILING)
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("#status")).to_contain_text("Failed")
    expect(page.locator(".exec-head .error")).to_contain_text("on purpose")
    # Navigation done: the retry is committed (InProgress), so terminal waits for attempt 2.
    with page.expect_navigation():
        page.click("#retry")
    with ui.client("viewer") as http:
        doc = terminal(http, execution_id)
    assert doc["runtimeStatus"] == "Failed"
    page.reload()
    expect(page.locator("details.attempt", has_text="attempt 2")).to_have_count(1)


def test_rerun_from_a_step_picked_on_the_graph(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, CHAIN, {"text": "hi"})
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    page.locator('.graph-svg .node[data-step="second"]').click()
    expect(page.locator("#from_step")).to_have_value("second")
    expect(page.locator("#rerun-reuse")).to_have_text("Reuses the outputs of: first")
    expect(page.locator('details.attempt[data-step="second"]')).to_have_attribute("open", "")
    page.click("#rerun")
    expect(page).not_to_have_url(re.compile(execution_id))
    expect(page.locator(".exec-head dl.facts")).to_contain_text(f"Rerun of{execution_id[:8]}")
    new_id = page.url.rsplit("/", 1)[1]
    with ui.client("viewer") as http:
        doc = terminal(http, new_id)
    assert doc["rerunOf"] == execution_id and doc["runtimeStatus"] == "Completed"


def test_keyboard_picks_a_step_on_the_graph(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, CHAIN, {"text": "hi"})
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    page.locator('.graph-svg .node[data-step="third"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#from_step")).to_have_value("third")


def accessible_names(page: Page, role: str) -> list[str]:
    """The names of the elements of ``role`` in Chromium's own accessibility tree (what a
    screen reader is given), in document order."""
    cdp = page.context.new_cdp_session(page)
    try:
        tree = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    return [
        node["name"]["value"]
        for node in tree
        if not node.get("ignored") and node.get("role", {}).get("value") == role and "name" in node
    ]


FOCUSED = """() => {
  const on = document.activeElement;
  return {step: on.getAttribute("data-step"), role: on.getAttribute("role"),
          label: on.getAttribute("aria-label"), inGraph: !!on.closest(".graph-svg")};
}"""


def test_the_graph_s_steps_are_named_buttons_that_keep_focus_when_picked(
    pages: Pages, ui: Service
) -> None:
    """The steps sat in an SVG of role img (one picture to a screen reader: its buttons
    were not there), and Enter on a step lost focus to the page: the attempt it opened
    fetched its log lines, and that swap drew the whole graph anew (tour: on call)."""
    execution_id = run(ui, CHAIN, {"text": "hi"})
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator(".graph-svg .node")).to_have_count(3)
    assert page.locator(".graph-svg").get_attribute("role") == "group"
    names = accessible_names(page, "button")
    for step in ("first", "second", "third"):
        assert f"step {step} (sys.transform): Completed" in names, names
    page.focus("#main")  # the keyboard from here on
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED)["inGraph"]:
            break
    on = page.evaluate(FOCUSED)
    assert on == {
        "step": "first",
        "role": "button",
        "label": "step first (sys.transform): Completed",
        "inGraph": True,
    }
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED)["step"] == "second"
    page.keyboard.press("Enter")
    expect(page.locator("#from_step")).to_have_value("second")
    attempt = page.locator('details.attempt[data-step="second"]')
    expect(attempt).to_have_attribute("open", "")
    # The log lines fetched into the attempt, and the rerun hint, are swapped in: focus
    # is still on the step then.
    expect(attempt.locator(".step-logs a[href]")).to_have_count(0)
    expect(page.locator("#rerun-reuse")).to_have_text("Reuses the outputs of: first")
    expect(page.locator(".graph-said")).to_contain_text("Step second picked")
    on = page.evaluate(FOCUSED)
    assert on["step"] == "second" and on["inGraph"], on
    expect(page.locator('.graph-svg .node[data-step="second"]')).to_have_attribute(
        "aria-current", "true"
    )
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED)["step"] == "third"  # on through the graph, in order


def test_console_value_error_and_sandbox(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, CHAIN, {"text": "hi"})
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    result = page.locator("#console-result")
    for expression, expected in (
        ("{{ steps.second.output.said ~ '!' }}", '"hi!"'),
        ("{{ steps.nope.output }}", "TemplateReferenceError"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "TemplateSecurityError"),
        ("{{ secrets.HOME }}", "TemplateReferenceError"),
    ):
        page.fill("#expression", expression)
        page.click("#console button")
        expect(result).to_contain_text(expected)


def test_an_xss_payload_in_an_output_stays_text(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, CHAIN, {"text": XSS})
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("details.tree").first).to_contain_text(XSS)
    assert page.locator("script:not([src])").count() == 0
    page.fill("#expression", "{{ input.text }}")
    page.click("#console button")
    expect(page.locator("#console-result pre")).to_contain_text(XSS)
    # the ``pages`` fixture fails the test on any dialog (alert) or CSP violation


def test_the_workflow_page_shows_the_definition_as_pushed(pages: Pages, ui: Service) -> None:
    commented = f"# Ships the order; reviewed by ops {XSS}\n" + CHAIN.lstrip()
    name = push(ui, commented)
    page = pages("viewer")
    page.goto(f"/workflows/{name}")
    source = page.locator("pre.source")
    expect(source).to_contain_text(f"# Ships the order; reviewed by ops {XSS}\nname: {name}")
    assert page.locator("script:not([src])").count() == 0


def test_a_post_without_the_csrf_token_is_refused(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, FORM)
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    answer = page.request.post(f"/executions/{execution_id}/cancel", form={"reason": "x"})
    assert answer.status == 403
    forged = page.request.post(f"/executions/{execution_id}/cancel", form={"csrf": "forged"})
    assert forged.status == 403
    with httpx.Client(base_url=ui.base_url, verify=tls.CONTEXT) as http:  # no cookie at all
        assert http.post(f"/executions/{execution_id}/cancel").status_code == 401
    with ui.client("viewer") as http:
        assert http.get(f"/api/v1/executions/{execution_id}").json()["runtimeStatus"] == (
            "AwaitingUserInput"
        )


def test_a_viewer_sees_no_action_buttons(pages: Pages, ui: Service) -> None:
    waiting = run(ui, FORM)
    failed = run(ui, FAILING)
    page = pages("viewer")
    page.goto(f"/executions/{waiting}")
    expect(page.locator(".prompt")).to_be_visible()
    expect(page.locator("section.actions")).to_have_count(0)
    expect(page.locator("form.schema-form")).to_have_count(0)
    page.goto(f"/executions/{failed}")
    expect(page.locator("#retry")).to_have_count(0)
    expect(page.locator("#rerun")).to_have_count(0)
    page.goto("/workflows")
    page.locator("table.list a").first.click()
    expect(page.locator("#start-form")).to_have_count(0)
    expect(page.get_by_role("link", name="Subscriptions")).to_have_count(0)
    # and what a viewer cannot see, the server refuses as well
    answer = page.request.get("/subscriptions")
    assert answer.status == 403


def test_an_offloaded_output_is_an_artifact_link(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, BLOB)
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    link = page.locator("details.tree a.artifact")
    expect(link).to_have_count(2)  # steps.blob.output and .outputData
    expect(link.first).to_have_text("blob.output.json")
    with page.expect_download() as download:
        page.locator("section[aria-labelledby=artifacts-h] a").first.click()
    body = download.value.path().read_text()
    assert body.count("x") >= 5000


def test_an_artifact_s_preview_is_drawn_on_the_page(pages: Pages, ui: Service) -> None:
    """Artifacts were names only (on-call tour): a small image saved by a step is drawn
    under the page's CSP, a JSON one shown, each with its size."""
    image = png(40, 30)
    with serve() as remote:
        template = f"""
        name: {{name}}
        steps:
          - id: chart
            type: sys.http_request
            input:
              url: "{remote}/bytes?hex={image.hex()}&type=image/png"
              save_as: artifact
              artifact_name: chart.png
          - id: fetch
            type: sys.http_request
            input: {{{{url: "{remote}/json", save_as: artifact, artifact_name: hello.json}}}}
        """
        execution_id = run(ui, textwrap.dedent(template))
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    section = page.locator("section[aria-labelledby=artifacts-h]")
    picture = section.locator("img.preview")
    expect(picture).to_have_attribute("alt", "chart.png")
    picture.scroll_into_view_if_needed()
    expect(picture).to_have_js_property("complete", True)
    assert picture.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [40, 30]
    expect(section.locator("li", has_text="chart.png")).to_contain_text(f"{len(image)} bytes")
    expect(section.locator("li", has_text="hello.json").locator("pre.preview")).to_have_text(
        '{\n  "hello": "world",\n  "unicode": "grüße ✓"\n}'
    )


def test_filters_and_cursor_paging(pages: Pages, ui: Service) -> None:
    name = push(ui, CHAIN)
    with ui.client("operator") as http:
        ids = [start(http, name, {"text": str(i)})["id"] for i in range(3)]
    page = pages("viewer")
    page.goto(f"/executions?workflow={name}&limit=2")
    rows = page.locator("tbody tr[data-execution]")
    expect(rows).to_have_count(2)
    first_page = [rows.nth(i).get_attribute("data-execution") for i in range(2)]
    assert first_page == ids[::-1][:2]  # newest first
    page.click("a[rel=next]")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-execution") == ids[0]
    page.goto(f"/executions?workflow={name}&status=Failed")
    expect(page.locator("tbody")).to_contain_text("No executions match")
    page.goto("/executions?created_after=yesterday")
    expect(page.get_by_role("alert")).to_contain_text("is not a date and time")


CHILD = """
name: {name}
steps:
  - {{id: hello, type: sys.transform, input: {{value: "child of {{{{ input.who }}}}"}}}}
"""
PARENT = """
name: {name}
steps:
  - id: each
    type: sys.loop
    input: {{items: [a, b, c]}}
    steps:
      - {{id: echo, type: sys.transform, input: {{value: "item {{{{ loop.each.item }}}}"}}}}
  - id: spawn
    type: sys.sub_workflow
    input: {{workflow: {child}, input: {{who: parent}}}}
"""


def test_loop_iterations_and_sub_workflow_links(pages: Pages, ui: Service) -> None:
    child = push(ui, CHILD)
    execution_id = run(ui, PARENT.replace("{child}", child))
    with ui.client("viewer") as http:
        terminal(http, execution_id)
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator('.graph-svg .node[data-step="each"]')).to_contain_text("3/3")
    page.locator("form.iterations input[name='iteration.each']").fill("1")
    page.locator("form.iterations button").click()
    expect(page).to_have_url(re.compile(r"iteration\.each=1"))
    expect(page.locator("details.tree").first).to_contain_text('"item b"')
    page.fill("#expression", "{{ loop.each.item }}")
    page.click("#console button")
    expect(page.locator("#console-result pre")).to_have_text('"b"')
    page.locator(".graph-svg .child-link").click()
    expect(page.locator(".exec-head h1")).to_contain_text(child)
    expect(page.locator(".exec-head dl.facts")).to_contain_text(f"Parent{execution_id[:8]}")


RACE = """
name: {name}
steps:
  - {{id: fast, type: sys.delay, after: [], input: {{duration: 50ms}}}}
  - {{id: slow, type: sys.delay, after: [], input: {{duration: 1h}}}}
  - {{id: decide, type: sys.transform, after: [fast, slow], join: first, input: {{value: 1}}}}
"""


def test_a_join_first_is_drawn_with_its_race_decided(pages: Pages, ui: Service) -> None:
    execution_id = run(ui, RACE)
    with ui.client("viewer") as http:
        terminal(http, execution_id)
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    # The edges into the join say how it joins; the loser is drawn cancelled.
    expect(page.locator(".graph-svg text.edge-label")).to_have_text(["first", "first"])
    expect(page.locator('.graph-svg .node[data-step="slow"]')).to_have_attribute(
        "aria-label", re.compile(r"Cancelled")
    )


FAILING_CHILD = """
name: {name}
input_schema: {{type: object, properties: {{n: {{type: integer}}}}}}
steps:
  - id: too_big
    type: sys.fail
    when: "{{{{ input.n > 1 }}}}"
    input: {{message: "{{{{ input.n }}}} is too big"}}
"""
FAILING_PARENT = """
name: {name}
steps:
  - id: each
    type: sys.sub_workflow
    input: {{workflow: {child}, items: [0, 1, 2], concurrency: 1, input: {{n: "{{{{ loop.each.item }}}}"}}}}
"""


def test_a_failed_sub_workflow_s_link_opens_the_child_that_failed(
    pages: Pages, ui: Service
) -> None:
    """Tour 22b M2: the graph's link opened the first child, which had completed."""
    child = push(ui, FAILING_CHILD)
    execution_id = run(ui, FAILING_PARENT.replace("{child}", child))
    with ui.client("viewer") as http:
        doc = terminal(http, execution_id)
    failed = doc["error"]["details"]["childWorkflowExecutionId"]
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator(".graph-svg .child-link")).to_have_text("failed child ↗")
    page.locator(".graph-svg .child-link").click()
    expect(page).to_have_url(re.compile(f"/executions/{failed}$"))
    expect(page.locator("#status")).to_contain_text("Failed")
    page.go_back()
    page.locator("#execution-error a.failed-child").click()
    expect(page).to_have_url(re.compile(f"/executions/{failed}$"))


PLUGIN = """
from pydantic import BaseModel
from flowledger import StepContext, step_type


class BoomInput(BaseModel):
    what: str


@step_type("webtest.boom")
async def boom(data: BoomInput, ctx: StepContext) -> dict:
    ctx.logger.warning("about to fail on %s", data.what)
    return {}[data.what]
"""
BOOMS = """
name: {name}
steps:
  - {{id: explode, type: webtest.boom, input: {{what: missing_key}}}}
"""


def test_an_opened_attempt_shows_its_log_lines_and_traceback(
    pages: Pages, ui: Service, tmp_path: Path
) -> None:
    """Tour 22b H1: the page showed ``KeyError: 'missing_key'`` and nothing of the
    traceback or the lines the handler logged. Reached by a short id (L7)."""
    plugin = tmp_path / "webtest_plugin.py"
    plugin.write_text(PLUGIN)
    workflow = tmp_path / "booms.yaml"
    workflow.write_text(textwrap.dedent(BOOMS.format(name=unique("ui"))))
    # In this process (the page is the subject, not the command's process), on a thread
    # of its own: sync Playwright's event loop holds the main thread, where the
    # command's asyncio.run() is refused.
    with ThreadPoolExecutor(1) as pool:
        args = ["run", str(workflow), "--plugin", str(plugin), "--json"]
        ran = pool.submit(run_in_process, args, env=ui.env, cwd=REPO).result()
    assert ran.returncode == 1, ran.stderr
    execution_id = json.loads(ran.stdout)["id"]
    page = pages("viewer")
    page.goto(f"/executions/{execution_id[:8]}")
    expect(page).to_have_url(re.compile(f"/executions/{execution_id}$"))
    attempt = page.locator('details.attempt[data-step="explode"]')
    expect(attempt.locator("pre.log")).to_have_count(0)  # not fetched with the page
    attempt.locator("summary").click()
    logs = attempt.locator(".step-logs pre.log")
    expect(logs).to_contain_text("WARNING about to fail on missing_key")
    expect(logs).to_contain_text("Traceback (most recent call last)")
    expect(logs).to_contain_text("KeyError: 'missing_key'")
    page.click("#failed-logs")  # from the error box, a page of its own
    expect(page.locator("h1")).to_have_text("Log lines of step explode, attempt 1")
    expect(page.locator("pre.log")).to_contain_text("KeyError: 'missing_key'")


SHOW = """(state) => {
  Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_hidden_tab_lets_its_stream_go_and_catches_up_when_shown(
    pages: Pages, ui: Service
) -> None:
    """Each page held a stream, and a browser opens 6 connections to one host: a 7th tab
    never loaded. A hidden tab now closes its stream; shown again, it catches up."""
    execution_id = run(ui, FORM)
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("#status")).to_contain_text("AwaitingUserInput")
    page.evaluate(SHOW, "hidden")
    with ui.client("operator") as http:
        assert http.post(f"/api/v1/executions/{execution_id}/cancel").status_code == 200
        assert terminal(http, execution_id)["runtimeStatus"] == "Cancelled"
    page.wait_for_timeout(1500)  # a stream would have brought the change by now
    expect(page.locator("#status")).to_contain_text("AwaitingUserInput")
    page.evaluate(SHOW, "visible")
    expect(page.locator("#status")).to_contain_text("Cancelled", timeout=10_000)


def test_a_graph_too_large_to_draw_says_so(pages: Pages, ui: Service) -> None:
    """A chain of 2,500 steps overflowed dagre's stack: a blank panel and a script error
    (which ``pages`` fails on), nothing said."""
    chain = "".join(
        f"  - {{{{id: s{i}, type: sys.transform, input: {{{{value: {i}}}}}}}}}\n"
        for i in range(2500)
    )
    name = push(ui, "name: {name}\nsteps:\n" + chain)
    page = pages("viewer")
    page.goto(f"/workflows/{name}")
    note = page.locator("#main .graph .graph-note")
    expect(note).to_contain_text("This graph has 2500 steps, too many to draw here.")
    expect(note).to_contain_text("in the definition below")
    assert page.locator(".graph-svg").count() == 0


def test_long_names_do_not_widen_the_pages(pages: Pages, ui: Service) -> None:
    """A 128-character name (allowed) made /executions 1,702 px wide in 1,400."""
    name = "n" * 117 + unique("ui")
    assert len(name) == 128
    with ui.client("admin") as http:
        push_from(http, FAILING, name)
        execution_id = start(http, name)["id"]
        settled(http, execution_id)
    page = pages("viewer")
    page.set_viewport_size({"width": 1200, "height": 800})
    wide = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    for path in ("/executions", "/workflows", f"/executions/{execution_id}"):
        page.goto(path)
        expect(page.locator("#main")).to_be_visible()
        assert page.evaluate(wide) is False, path
    page.goto("/executions")
    row = page.locator(f'tr[data-execution="{execution_id}"] a.name')
    assert row.get_attribute("title") == name and row.inner_text() == name


TYPING = """
name: {name}
steps:
  - id: ask
    type: sys.wait_for_input
    after: []
    input:
      prompt: "A note, while the ticker runs"
      schema:
        type: object
        properties: {{note: {{type: string}}, count: {{type: integer}}}}
        required: [note]
  - id: ticker
    type: sys.loop
    after: []
    input: {{items: "{{{{ range(600) | list }}}}", concurrency: 1}}
    steps:
      - {{id: tick, type: sys.delay, input: {{duration: 200ms}}}}
"""
SWAPS = """() => {
  window.swaps = 0;
  document.addEventListener("htmx:afterSwap", () => window.swaps++);
}"""


def test_what_a_person_types_survives_live_refreshes(pages: Pages, ui: Service) -> None:
    """While another branch ran, each live refresh (about 3 a second) replaced the waiting
    step's form with an empty one: what a person typed was lost as they typed it."""
    name = push(ui, TYPING)
    with ui.client("operator") as http:
        execution_id = start(http, name)["id"]
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    form = page.locator("#input-ask")
    expect(form).to_be_visible()
    page.evaluate(SWAPS)
    form.locator("input[name=count]").fill("7")
    note = form.locator("input[name=note]")
    note.click()
    text = "typed at a person's pace"
    page.keyboard.type(text[:8], delay=60)
    swapped(page, 2)  # refreshes came between the keys typed (waited on, not hoped for)
    page.keyboard.type(text[8:], delay=60)
    assert page.evaluate("window.swaps") >= 2
    expect(note).to_have_value(text)
    expect(note).to_be_focused()
    page.keyboard.press("Home")  # the caret stays where it is across refreshes
    page.keyboard.type(">")
    swapped(page, page.evaluate("window.swaps") + 1)
    page.keyboard.type("> ")
    expect(note).to_have_value(">> " + text)
    expect(form.locator("input[name=count]")).to_have_value("7")
    form.locator("input[name=count]").fill("seven")
    form.locator("button").click()  # refused: what was typed is shown, and kept by refreshes
    expect(page.locator("#input-error")).to_be_visible()
    page.evaluate(SWAPS)
    swapped(page, 2)
    assert page.evaluate("window.swaps") >= 2
    expect(form.locator("input[name=note]")).to_have_value(">> " + text)
    expect(form.locator("input[name=count]")).to_have_value("seven")
    form.locator("input[name=count]").fill("7")
    form.locator("button").click()
    with ui.client("operator") as http:
        assert answered(http, execution_id, "ask") == {"note": ">> " + text, "count": 7}
        # The ticker (2 minutes: still running however slowly a loaded machine types)
        # is not waited for: the answer is recorded.
        assert http.post(f"/api/v1/executions/{execution_id}/cancel").status_code in (200, 202)


def answered(http: httpx.Client, execution_id: str, step: str) -> Any:
    """The output of ``step`` once it completed (polled: its execution runs on)."""
    deadline = time.monotonic() + 30
    while True:
        doc = http.get(f"/api/v1/executions/{execution_id}").json()
        for run in doc["steps"].values():
            if run["stepId"] == step and run["status"] == "Completed":
                return run["outputData"]
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)


#: Scrolls a step's node into the middle of its graph's box; whether it is in view there
#: now (false when a refresh had detached the node: it scrolled nothing).
SCROLLED_IN = """(node) => {
  node.scrollIntoView({block: 'center'});
  const box = node.closest('.graph');
  if (!node.isConnected || !box) return false;
  const r = node.getBoundingClientRect(), b = box.getBoundingClientRect();
  return b.top <= r.top && r.bottom <= b.bottom;
}"""


def swapped(page: Page, times: int) -> None:
    """Wait until the page's live region was refreshed ``times`` times since SWAPS ran
    (polled: the page's CSP refuses wait_for_function's evaluated string)."""
    deadline = time.monotonic() + 60
    while page.evaluate("window.swaps") < times and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert page.evaluate("window.swaps") >= times


TALL = "name: {name}\nsteps:\n" + "".join(
    f"  - {{{{id: s{i}, type: sys.delay, input: {{{{duration: 500ms}}}}}}}}\n" for i in range(60)
)


def test_a_tall_graph_keeps_its_lower_steps_in_reach_while_it_runs(
    pages: Pages, ui: Service
) -> None:
    """A 60-step chain's graph scrolls in its box, and each live refresh drew it anew
    scrolled back to the top: while the execution ran its lower steps snapped out of
    sight within a second, out of reach (tour: on call). The box keeps its scroll, and
    the step that had focus keeps it."""
    name = push(ui, TALL)
    with ui.client("operator") as http:
        execution_id = start(http, name)["id"]
    page = pages("viewer")
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"/executions/{execution_id}")
    last = page.locator('.graph-svg .node[data-step="s59"]')
    box = page.locator(".graph")
    expect(last).to_have_count(1)
    # It is a tall one: read in one script from the node, so of a graph drawn (a live
    # refresh may swap in a box whose graph is not drawn yet, failed under load).
    # Polled: a box just swapped in may not be laid out yet (failed once in the gate).
    tall = "(node) => { const b = node.closest('.graph'); return b.scrollHeight > b.clientHeight; }"
    deadline = time.monotonic() + 30
    while not last.evaluate(tall):
        assert time.monotonic() < deadline, "the graph's box never grew taller than it shows"
        page.wait_for_timeout(50)
    # In one script: Playwright's scroll waits for the node to be stable, and a live
    # refresh may swap it out meanwhile ("not attached to the DOM"). Again until the
    # node scrolled is the page's: one a refresh had just detached scrolled nothing, and
    # the refreshes after kept the box's scroll at the top (failed once in the gate).
    deadline = time.monotonic() + 30
    while not last.evaluate(SCROLLED_IN):
        assert time.monotonic() < deadline, "the last step never scrolled into its box"
        page.wait_for_timeout(50)
    page.evaluate(SWAPS)
    swapped(page, 2)
    shown, drawn = box.bounding_box(), last.bounding_box()
    assert shown is not None and drawn is not None
    assert shown["y"] <= drawn["y"] and drawn["y"] + drawn["height"] <= shown["y"] + shown["height"]
    assert drawn["y"] >= 0 and drawn["y"] + drawn["height"] <= 800  # and in the window
    last.focus()
    page.evaluate(SWAPS)
    swapped(page, 2)
    assert page.evaluate("document.activeElement.getAttribute('data-step')") == "s59"
    with ui.client("operator") as http:
        doc = http.get(f"/api/v1/executions/{execution_id}").json()
        assert doc["runtimeStatus"] == "InProgress"  # the refreshes were of a running one
        assert http.post(f"/api/v1/executions/{execution_id}/cancel").status_code in (200, 202)


def test_a_live_refresh_the_server_fails_is_said_and_tried_again(pages: Pages, ui: Service) -> None:
    """A live refresh answered 5xx (the database out of reach: storage_unavailable; a
    bug) left the page as it was with no sign. Now a banner says so in the server's
    words and the page refreshes again every 5 s until one comes through. The failing
    answers are the browser's (Playwright routes the page's refreshes, its own requests
    marked HX-Request): a real server has no switch for its database's failure."""
    name = push(ui, TALL)
    with ui.client("operator") as http:
        execution_id = start(http, name)["id"]
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    expect(page.locator("#live-region")).to_be_visible()
    failing = {"on": True, "answered": 0}

    def refuse(route: Any) -> None:
        if failing["on"] and route.request.headers.get("hx-request"):
            failing["answered"] += 1
            body = {"error": {"code": "storage_unavailable", "message": "the database does "
                              "not answer", "details": None}}  # fmt: skip
            route.fulfill(status=503, content_type="application/json", body=json.dumps(body))
            return
        route.continue_()

    page.route(re.compile(rf"/executions/{execution_id}(\?.*)?$"), refuse)
    banner = page.locator("#offline")
    expect(banner).to_have_text(
        re.compile(
            r"^This page could not refresh \(the server answered 503: the database does not "
            r"answer\) — showing data from \d\d:\d\d:\d\d; retrying"
        ),
        timeout=30_000,
    )
    expect(banner).to_have_attribute("role", "alert")
    failing["on"] = False
    expect(banner).to_be_hidden(timeout=30_000)  # the next refresh came through
    assert failing["answered"] >= 1
    with ui.client("operator") as http:
        assert http.post(f"/api/v1/executions/{execution_id}/cancel").status_code in (200, 202)


RECORD = """() => {
  window.refreshes = [];
  document.addEventListener("htmx:beforeRequest", (e) => {
    if (e.detail.target && e.detail.target.id === "live-region")
      window.refreshes.push({start: performance.now(), end: null});
  });
  document.addEventListener("htmx:afterSwap", () => {
    const last = window.refreshes[window.refreshes.length - 1];
    if (last && last.end === null) last.end = performance.now();
  });
}"""


def test_live_refreshes_take_turns_and_slow_down_for_a_heavy_page(
    pages: Pages, ui: Service
) -> None:
    """A running 1,500-step chain's page was fetched again at each change, each refresh
    right behind the last however long it took: 16 of 4.5 MB in 20 s, the tab frozen
    for seconds at a time. Now one at a time, after a pause of twice the last one's."""
    chain = "".join(
        f"  - {{{{id: s{i}, type: sys.delay, input: {{{{duration: 60ms}}}}}}}}\n"
        for i in range(1000)
    )
    name = push(ui, "name: {name}\nsteps:\n" + chain)
    with ui.client("operator") as http:
        execution_id = start(http, name)["id"]
    page = pages("viewer")
    page.goto(f"/executions/{execution_id}")
    page.evaluate(RECORD)
    # Three refreshes swapped in, however slow a loaded machine makes them (the chain
    # runs 60 s at least, changing all the while: still running when cancelled below).
    # (Polled from here: the page's CSP refuses wait_for_function's evaluated string.)
    ended = "() => window.refreshes.filter((r) => r.end !== null).length"
    deadline = time.monotonic() + 90
    while page.evaluate(ended) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    with ui.client("operator") as http:
        assert http.post(f"/api/v1/executions/{execution_id}/cancel").status_code in (200, 202)
    runs = [r for r in page.evaluate("window.refreshes") if r["end"] is not None]
    assert len(runs) >= 3, runs
    for before, after in itertools.pairwise(runs):
        took = before["end"] - before["start"]
        assert after["start"] >= before["end"], runs  # never two at once
        # Twice the last one's time (app.js measures a little more than took), up to 10 s.
        assert after["start"] - before["end"] >= min(9_000, max(250, 1.5 * took)), runs


LOOPED = """
name: {name}
steps:
  - id: lp
    type: sys.loop
    input: {{items: "{{{{ range(1200) | list }}}}", concurrency: 50}}
    steps:
      - {{id: body, type: sys.transform, input: {{value: "{{{{ loop.lp.item }}}}"}}}}
  - {{id: {long}, type: sys.transform, input: {{value: 1}}}}
"""
OVERFLOWING = """() => [...document.querySelectorAll(".graph-svg .node")].filter((node) => {
  const box = node.querySelector("rect").getBBox();
  const link = node.parentNode.querySelector(`a.child-link[data-step="${CSS.escape(node.dataset.step)}"]`);
  return [...node.querySelectorAll("text"), ...(link ? link.querySelectorAll("text") : [])].some((text) => {
    const drawn = text.getBBox();
    return drawn.x + drawn.width > box.x + box.width - 4;
  });
}).map((node) => node.dataset.step)"""


def test_every_iteration_can_be_chosen_and_texts_fit_their_boxes(pages: Pages, ui: Service) -> None:
    """The picker listed iterations 0-999 of a 1,200-item loop (a hand-typed 1100 showed
    "all"), and the loop's "sys.loop  1200/1200" ran past its box on the graph."""
    long = "a_step_named_at_length_" + "x" * 100
    execution_id = run(ui, LOOPED.replace("{long}", long))
    page = pages("viewer")
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(f"/executions/{execution_id}")
    expect(page.locator('.graph-svg .node[data-step="lp"]')).to_contain_text("1200/1200")
    assert page.evaluate(OVERFLOWING) == []
    cut = page.locator(f'.graph-svg .node[data-step="{long}"]')
    expect(cut.locator("text.node-label")).to_have_text(re.compile(r"^a_step_named_at_length_x+…$"))
    expect(cut.locator("title")).to_have_text(long)
    wide = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    assert page.evaluate(wide) is False  # nor does the long id widen the tables
    picker = page.locator("form.iterations input[name='iteration.lp']")
    expect(picker).to_have_attribute("max", "1199")
    picker.fill("1100")
    page.locator("form.iterations button").click()
    expect(page.locator('details.attempt[data-step="body"] summary')).to_contain_text(
        "body[lp#1100]"
    )
    expect(page.locator("form.iterations input[name='iteration.lp']")).to_have_value("1100")
    page.goto(f"/executions/{execution_id}?iteration=lp:1150")  # a link's form
    expect(page.locator("form.iterations input[name='iteration.lp']")).to_have_value("1150")
    expect(page.locator("ul.timeline")).to_contain_text("body[lp#1150]")


#: Every class a badge is drawn with: the execution statuses, a step's Disabled, and the
#: seed's run statuses (/workflow-runs) the job-run page shows.
BADGES = [s.value for s in ExecutionStatus] + ["Disabled", "FAILED", "COMPLETED"]
CONTRAST = """(names) => {
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = (css) => {
    const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map(channel);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const found = {};
  for (const name of names) {
    const badge = document.createElement("span");
    badge.className = "badge s-" + name;
    badge.textContent = name;
    document.body.appendChild(badge);
    const style = getComputedStyle(badge);
    const [light, dark] = [luminance(style.color), luminance(style.backgroundColor)].sort((a, b) => b - a);
    found[name] = Math.round((light + 0.05) / (dark + 0.05) * 100) / 100;
    badge.remove();
  }
  return found;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_status_badge_reads_at_4_5_to_1(browser: Browser, ui: Service, scheme: str) -> None:
    """12 px bold white on the status colours: 2.5 to 3.4:1 in dark mode, NotStarted
    3.04 and CompletedWithNoActionTaken 4.12 in light (tour 22B M8; WCAG AA: 4.5)."""
    context = browser.new_context(base_url=ui.base_url, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto("/signin")
        found = page.evaluate(CONTRAST, BADGES)
    finally:
        context.close()
    assert {name: ratio for name, ratio in found.items() if ratio < 4.5} == {}, found


def test_the_lists_fit_a_phone_s_width(pages: Pages, ui: Service) -> None:
    """At 375 px the list was 793 px wide and the whole page scrolled sideways (L5): a
    table now scrolls in its own box."""
    failed = run(ui, FAILING)
    page = pages("viewer")
    page.set_viewport_size({"width": 375, "height": 800})
    wide = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    for path in ("/executions", "/executions?status=Failed", "/workflows", f"/executions/{failed}"):
        page.goto(path)
        expect(page.locator("#main")).to_be_visible()
        assert page.evaluate(wide) is False, path
    page.goto("/executions?status=Failed")
    scrolls = "(box) => box.scrollWidth > box.clientWidth"
    assert page.locator(".table-box").evaluate(scrolls) is True


NESTED = """
name: {name}
steps:
  - id: outer
    type: sys.loop
    input: {{items: [1, 2, 3], concurrency: 1}}
    steps:
      - id: inner
        type: sys.loop
        input: {{items: [1, 2], concurrency: 1}}
        steps:
          - {{id: transform_the_inbound_record_for_the_ledger, type: sys.transform, input: {{value: 1}}}}
"""
TIMELINE_ROWS = """() => [...document.querySelectorAll("ul.timeline > li")].map((row) => {
  const [what, track, took] = ["what", "track", "dur"].map((c) => row.querySelector("." + c));
  const [a, b, c] = [what, track, took].map((e) => e.getBoundingClientRect());
  const where = what.querySelector(".where");
  return {label: what.title, fontPx: parseFloat(getComputedStyle(what).fontSize),
          whereCut: where.scrollWidth > where.clientWidth,
          height: a.height, labelEnd: a.right, trackStart: b.left, trackEnd: b.right,
          tookStart: c.left, tookEnd: c.right, rowEnd: row.getBoundingClientRect().right};
})"""


def test_the_timeline_reads_on_a_phone_and_labels_stay_off_the_bars(
    pages: Pages, ui: Service
) -> None:
    """At 375 px the timeline was one drawing scaled to a third: its labels 3 px high,
    and a nested loop's long labels ran over the bars (on-call tour). Each row's label
    is cut to its column now (its step id first), at the page's own text size."""
    execution_id = run(ui, NESTED)
    page = pages("viewer")
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"/executions/{execution_id}")
    rows = page.evaluate(TIMELINE_ROWS)
    assert len(rows) == 1 + 3 + 6  # the loop, inner per outer iteration, the body per inner one
    body = "transform_the_inbound_record_for_the_ledger[outer#2][inner#1]"
    assert body in [row["label"] for row in rows]
    for row in rows:
        assert row["fontPx"] >= 12 and row["height"] >= 12, row
        assert not row["whereCut"], row  # the iterations tell the rows apart: never cut
        assert row["labelEnd"] <= row["trackStart"] and row["trackEnd"] <= row["tookStart"], row
        assert row["trackEnd"] - row["trackStart"] >= 40, row  # a bar still has room
        assert row["tookEnd"] <= row["rowEnd"] + 0.5 <= 375, row
    wide = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    assert page.evaluate(wide) is False


def test_a_form_sent_after_the_session_ended_is_filled_in_again_after_signing_in(
    pages: Pages, ui: Service
) -> None:
    """The answer typed was lost: the 401 page linked to /signin with no way back (L6)."""
    execution_id = run(ui, FORM)
    page = pages("operator")
    page.goto(f"/executions/{execution_id}")
    form = page.locator("#input-approve")
    form.locator("select[name=approved]").select_option("true")
    form.locator("input[name=amount]").fill("42")
    page.context.clear_cookies()  # the session ended while the page was open
    form.locator("button").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Your session expired, so this form was not sent."
    )
    expect(page.locator(".kept")).to_be_visible()
    page.get_by_role("link", name="Sign in again").click()
    page.fill("#token", ui.tokens["operator"])
    page.click("form[action='/signin'] button")
    expect(page).to_have_url(re.compile(f"/executions/{execution_id}$"))
    form = page.locator("#input-approve")
    expect(form.locator("input[name=amount]")).to_have_value("42")
    expect(form.locator("select[name=approved]")).to_have_value("true")
    with page.expect_navigation(url=re.compile(f"/executions/{execution_id}$")):
        form.locator("button").click()
    with ui.client("viewer") as http:
        doc = terminal(http, execution_id)
    outputs = {s["stepId"]: s["outputData"] for s in doc["steps"].values()}
    assert outputs["approve"]["amount"] == 42
    page.wait_for_load_state()
    assert page.evaluate("window.sessionStorage.getItem('flowledger:draft')") is None  # used once


def test_a_server_out_of_reach_is_shown_and_a_form_is_not_lost_to_it(
    pages: Pages, browser: Browser, ui: Service, sessions: dict[str, Any]
) -> None:
    """With serve stopped the page went on showing stale data with no sign, and a form
    sent landed on Chrome's "site can't be reached" page (tour 22B M5). The browser
    reaches the server through a gateway the test cuts and restores: to the page that is
    the server stopped (connections refused, its stream dropped) and back, without the
    15-30 s that stopping and restarting a ``flowledger serve`` took under load (its exit
    code on SIGTERM is checked by every ``launch``, this module's server included)."""
    pages("viewer")  # the module's viewer session (signed in once: see ``sessions``)
    with gateway(ui.base_url) as reach:
        # Its cookie holds through the gateway: a cookie names its host, not a port.
        context = browser.new_context(base_url=reach.url, storage_state=sessions["viewer"])
        try:
            page = context.new_page()
            page.goto("/executions")
            banner = page.locator("#offline")
            expect(page.locator("#live-region")).to_be_visible()
            expect(banner).to_have_count(0)
            still = context.new_page()  # a page that follows nothing live
            still.goto("/workflows")
            reach.cut()
            # It asks the server when a form is being filled in (here: focus on Sign out).
            still.get_by_role("button", name="Sign out").focus()
            expect(still.locator("#offline")).to_be_visible()
            still.get_by_role("button", name="Sign out").click()
            expect(still.locator("#offline")).to_contain_text("Your form was not sent")
            expect(still).to_have_url(re.compile(r"/workflows$"))
            expect(banner).to_be_visible()
            expect(banner).to_have_attribute("role", "alert")
            expect(banner).to_have_text(
                re.compile(r"^Connection lost — showing data from \d\d:\d\d:\d\d; retrying")
            )
            page.fill("input[name=workflow]", "typed while down")
            page.click("form.filters button")
            expect(banner).to_contain_text("Your form was not sent")
            expect(page).to_have_url(re.compile(r"/executions$"))
            expect(page.locator("input[name=workflow]")).to_have_value("typed while down")
            reach.restore()
            expect(banner).to_be_hidden()
            page.click("form.filters button")
            expect(page).to_have_url(re.compile(r"workflow=typed"))
        finally:
            context.close()

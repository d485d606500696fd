"""The read models of the web UI (app.views): counts, graph, timeline, attempts, data
store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from flowledger.app import (
    App,
    CancelExecution,
    CancelJobRun,
    CreateJobRun,
    DriveJobRun,
    GetJobRun,
    NotFoundError,
    PushWorkflows,
    RunExecution,
    WorkflowText,
)
from flowledger.app.graph_view import DefinitionGraph
from flowledger.app.rerun_reuse import RerunReuse
from flowledger.app.store_tree import STORE_ENTRIES, STORE_NODES, TreeNode
from flowledger.app.views import GetExecutionView
from flowledger.storage import Row

BRANCHY = """\
name: branchy
steps:
  - {id: a, type: sys.transform, input: {value: "{{ input.n }}"}}
  - id: c
    type: sys.condition
    input: {expression: "{{ steps.a.output > 1 }}"}
    then: [lp]
    else: [none]
  - id: lp
    type: sys.loop
    input: {items: [10, 20, 30], concurrency: 1}
    steps:
      - {id: inner, type: sys.transform, input: {value: {got: "{{ loop.lp.item }}"}}}
  - {id: none, type: sys.no_action}
"""


@pytest.fixture
def branchy(tmp_path: Path) -> str:
    path = tmp_path / "branchy.yaml"
    path.write_text(BRANCHY)
    return str(path)


async def test_the_execution_view_colours_the_graph_and_lists_every_attempt(
    app: App, branchy: str
) -> None:
    doc = await app.executions.run(RunExecution(workflow=branchy, allow_file=True, input={"n": 3}))
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    nodes = {n["id"]: n for n in view["nodes"]}
    assert nodes["none"]["status"] == "Disabled"
    assert nodes["lp"]["isLoop"] and (nodes["lp"]["done"], nodes["lp"]["total"]) == (3, 3)
    assert nodes["inner"]["parent"] == "lp"
    edges = {(e["source"], e["target"]): e for e in view["edges"]}
    assert edges[("c", "lp")]["label"] == "then" and edges[("c", "lp")]["state"] == "taken"
    assert edges[("c", "none")]["label"] == "else" and edges[("c", "none")]["state"] == "skipped"
    assert edges[("lp", "inner")]["label"] == "body"
    assert [b["label"] for b in view["timeline"]].count("inner[lp#1]") == 1
    assert all(0 <= b["x"] <= 1000 and b["width"] > 0 for b in view["timeline"])
    first = next(a for a in view["attempts"] if a["stepId"] == "a")
    assert first["templates"] == [{"path": "input.value", "template": "{{ input.n }}", "value": 3}]
    assert first["idempotencyKey"] and first["output"] == 3
    assert "lp" in view["rerun"] and "inner" not in view["rerun"]  # top-graph steps
    reuse = await app.views.rerun_reuse(RerunReuse(id=doc["id"], from_step="lp"))
    assert reuse == {"fromStep": "lp", "reused": ["a", "c"], "count": 2}
    assert view["dataStore"]["input"] == {"n": 3}
    assert view["dataStore"]["steps"]["inner"]["output"] == {"got": 30}  # the last iteration


async def test_a_rerun_hint_is_asked_for_per_step_not_drawn_for_every_step(
    app: App, tmp_path: Path
) -> None:
    """Every step's reused steps were on the page: n²/2 ids for a chain of n (12 MB for
    2,000 steps), in name order (s0, s1, s10, s100, …)."""
    chain = tmp_path / "chain.yaml"
    steps = "".join(
        f"  - {{id: s{i}, type: sys.transform, input: {{value: {i}}}}}\n" for i in range(120)
    )
    chain.write_text(f"name: chain\nsteps:\n{steps}")
    doc = await app.executions.run(RunExecution(workflow=str(chain), allow_file=True))
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    assert view["rerunReuse"] == {
        "fromStep": "s119",
        "reused": [f"s{i}" for i in range(20)],
        "count": 119,
    }
    reuse = await app.views.rerun_reuse(RerunReuse(id=doc["id"], from_step="s11"))
    assert reuse["reused"] == [f"s{i}" for i in range(11)] and reuse["count"] == 11
    with pytest.raises(NotFoundError, match="has no step 'nope' to rerun from"):
        await app.views.rerun_reuse(RerunReuse(id=doc["id"], from_step="nope"))


async def test_a_long_graph_lists_its_latest_attempts_and_a_step_s_on_request(
    app: App, tmp_path: Path
) -> None:
    """Loops were capped, long graphs were not: a 3,000-step chain's page listed every
    attempt and every step's data store entry (7 MB, 2 s to render, on each refresh)."""
    chain = tmp_path / "long.yaml"
    steps = "".join(
        f"  - {{id: s{i}, type: sys.transform, input: {{value: {i}}}}}\n" for i in range(250)
    )
    failing = "  - {id: s5, type: sys.fail, input: {message: stop}, continue_on_error: true}\n"
    chain.write_text(f"name: long\nsteps:\n{steps.replace(steps.splitlines(True)[5], failing)}")
    doc = await app.executions.run(RunExecution(workflow=str(chain), allow_file=True))
    assert doc["runtimeStatus"] == "Completed"
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    latest = [f"s{i}" for i in range(150, 250)]
    assert [a["stepId"] for a in view["attempts"]] == ["s5", *latest]  # a failure stays
    assert (view["olderAttempts"], view["hiddenAttempts"], view["step"]) == (149, 0, None)
    assert [b["label"] for b in view["timeline"]] == ["s5", *latest]
    assert sorted(view["dataStore"]["steps"]) == sorted(["s5", *latest])
    assert view["hiddenStoreSteps"] == 149
    assert len(view["nodes"]) == 250  # the graph is whole
    one = await app.views.execution(GetExecutionView(id=doc["id"], step="s3"))
    assert [a["stepId"] for a in one["attempts"]] == ["s3"]
    assert (one["olderAttempts"], one["step"]) == (0, "s3")
    assert list(one["dataStore"]["steps"]) == ["s3"]
    unknown = await app.views.execution(GetExecutionView(id=doc["id"], step="nope"))
    assert unknown["step"] is None and len(unknown["attempts"]) == 101


async def test_an_iteration_is_chosen_per_loop(app: App, branchy: str) -> None:
    doc = await app.executions.run(RunExecution(workflow=branchy, allow_file=True, input={"n": 3}))
    view = await app.views.execution(GetExecutionView(id=doc["id"], iterations={"lp": 1}))
    assert view["iterations"] == {"lp": 1}
    assert view["dataStore"]["steps"]["inner"]["output"] == {"got": 20}
    assert view["dataStore"]["loop"]["lp"] == {
        "loopName": "lp",
        "items": [10, 20, 30],
        "index": 1,
        "item": 20,
        "previous": {"inner": {"got": 10}},  # iteration 0's outputs, as the run saw them
    }
    ignored = await app.views.execution(GetExecutionView(id=doc["id"], iterations={"no": 1}))
    assert ignored["iterations"] == {}


NESTED = """\
name: nested
steps:
  - id: outer
    type: sys.loop
    input: {items: [[1, 2], [3]]}
    steps:
      - id: inner
        type: sys.loop
        input: {items: "{{ loop.outer.item }}"}
        steps:
          - {id: each, type: sys.transform, input: {value: "{{ loop.inner.item }}"}}
"""


async def test_a_nested_loop_counts_the_iterations_it_is_shown_for(
    app: App, tmp_path: Path
) -> None:
    """The inner loop ran 2 iterations in outer's first and 1 in its second: 3/3 over
    all, 2/2 and 1/1 for each chosen one (it read 2/1)."""
    path = tmp_path / "nested.yaml"
    path.write_text(NESTED)
    doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
    assert doc["runtimeStatus"] == "Completed"

    async def counts(**chosen: int) -> dict[str, tuple[int, int]]:
        view = await app.views.execution(GetExecutionView(id=doc["id"], iterations=chosen))
        return {n["id"]: (n["done"], n["total"]) for n in view["nodes"] if n["isLoop"]}

    assert await counts() == {"outer": (2, 2), "inner": (3, 3)}
    assert await counts(outer=0) == {"outer": (2, 2), "inner": (2, 2)}
    assert await counts(outer=1) == {"outer": (2, 2), "inner": (1, 1)}
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    assert view["loops"] == {"outer": 2, "inner": 2}  # the indexes one can choose


UNTIL = """\
name: until-view
variables: {n: 0}
steps:
  - id: poll
    type: sys.loop
    input: {until: "{{ variables.n >= 9 }}", max_iterations: 3}
    steps:
      - {id: bump, type: sys.set_variable, input: {name: n, op: increment}}
"""


async def test_an_until_loop_counts_the_iterations_it_started_and_shows_its_frames(
    app: App, tmp_path: Path
) -> None:
    """An until loop has no items: the graph counts the iterations it ran (its output has
    none, the step failed at max_iterations), the selector offers them, and the data
    store shows the chosen iteration's frame as the run had it."""
    path = tmp_path / "until.yaml"
    path.write_text(UNTIL)
    doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
    assert doc["runtimeStatus"] == "Failed"
    view = await app.views.execution(GetExecutionView(id=doc["id"], iterations={"poll": 2}))
    [poll] = [n for n in view["nodes"] if n["id"] == "poll"]
    assert (poll["done"], poll["total"]) == (3, 3)
    assert view["loops"] == {"poll": 3}
    assert view["dataStore"]["loop"]["poll"] == {
        "loopName": "poll",
        "items": None,
        "index": 2,
        "item": None,
        "previous": {"bump": {"name": "n", "value": 2, "op": "increment"}},
    }
    first = await app.views.execution(GetExecutionView(id=doc["id"], iterations={"poll": 0}))
    assert first["dataStore"]["loop"]["poll"]["previous"] is None


async def test_a_definition_graph_and_a_missing_execution(app: App) -> None:
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=BRANCHY)]))
    nodes, edges = await app.views.definition_graph(DefinitionGraph(name="branchy"))
    assert {n["status"] for n in nodes} == {"NotStarted"}
    assert {e["state"] for e in edges} == {"pending"}
    with pytest.raises(NotFoundError):
        await app.views.execution(GetExecutionView(id="nope"))


async def test_the_edges_into_a_join_first_say_so(app: App) -> None:
    text = (
        "name: raced\nsteps:\n"
        "  - {id: a, type: sys.transform, after: [], input: {value: 1}}\n"
        "  - {id: b, type: sys.transform, after: [], input: {value: 2}}\n"
        "  - {id: j, type: sys.transform, after: [a, b], join: first, input: {value: 3}}\n"
        "  - {id: k, type: sys.transform, after: [a, b], input: {value: 4}}\n"
    )
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=text)]))
    _, edges = await app.views.definition_graph(DefinitionGraph(name="raced"))
    labels = {(e["source"], e["target"]): e["label"] for e in edges}
    assert labels == {("a", "j"): "first", ("b", "j"): "first", ("a", "k"): None, ("b", "k"): None}


WAITS = """\
name: waits
steps:
  - {id: nap, type: sys.delay, input: {duration: 50ms}}
  - id: boom
    type: sys.http_request
    input: {method: GET, url: "http://127.0.0.1:9/refused"}
    retry: {max_attempts: 2, backoff: fixed, initial_delay: 20ms}
"""


async def test_the_timeline_shows_waits_and_retry_back_off(app: App, tmp_path: Path) -> None:
    path = tmp_path / "waits.yaml"
    path.write_text(WAITS)
    doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    bars = {(b["label"], b["attempt"]): b for b in view["timeline"]}
    assert set(bars) == {("nap", 1), ("boom", 1), ("boom", 2)}
    nap = bars[("nap", 1)]
    (nap_wait,) = nap["waits"]
    assert nap_wait["kind"] == "wait" and nap_wait["durationMs"] >= 0
    assert (
        nap["x"]
        <= nap_wait["x"]
        <= nap_wait["x"] + nap_wait["width"]
        <= nap["x"] + nap["width"] + 1
    )
    (back_off,) = bars[("boom", 2)]["waits"]
    assert back_off["kind"] == "backoff" and back_off["x"] < bars[("boom", 2)]["x"] + 1
    assert bars[("boom", 1)]["waits"] == []
    assert [e["seq"] for e in view["events"]] == list(range(1, len(view["events"]) + 1))


ASKS = """\
name: asks
steps:
  - id: ask
    type: sys.wait_for_input
    input: {prompt: "ok?", schema: {type: object, properties: {ok: {type: boolean}}}}
"""
PARENT = """\
name: parent
steps:
  - {id: kids, type: sys.sub_workflow, input: {workflow: asks}}
"""


async def test_a_job_run_s_view_lists_the_cancel_its_workflow_has_not_taken(app: App) -> None:
    """A job run's cancel without ``settle`` (the web's) is recorded and left to the
    execution's holder and the workers, and answered at once: the job run's view lists it
    (the page says "Cancelling") until the execution takes it."""
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASKS)]))
    job = await app.job_runs.create(
        CreateJobRun(text="name: nightly\nworkflows:\n  - {workflow: asks}\n", hold=True)
    )
    await app.job_runs.drive(DriveJobRun(id=job["id"]))  # it waits for a person
    answer = await app.job_runs.cancel(CancelJobRun(id=job["id"], by="ops", reason="no"))
    assert answer["status"] == "AwaitingUserInput"  # recorded, not yet taken
    view = await app.views.job_run(GetJobRun(id=job["id"]))
    assert [(c["kind"], c["by"]) for c in view["cancels"]] == [("cancel", "ops")]
    await app.engine.drive(view["run"]["runs"][0]["executionId"] or "")  # as a worker does
    view = await app.views.job_run(GetJobRun(id=job["id"]))
    assert view["run"]["status"] == "Cancelled" and view["cancels"] == []


async def test_a_job_run_s_view_is_cancelled_when_its_workflow_takes_the_cancel_mid_read(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view reads the job run, then its workflow's execution: a worker taking the
    cancel between the two made a view that was neither "Cancelling" (no cancel pending
    any more) nor Cancelled (the job run as read before), so the page offered the cancel
    again (the web tour's race). The execution ends for real at that moment here."""
    job_id, execution_id = await _cancel_asked_of_a_held_job_run(app)
    store = app.engine.store
    read_row = store.get_execution
    taken: list[str] = []

    async def a_worker_takes_it_first(wanted: str) -> Row | None:
        if wanted == execution_id and not taken:
            taken.append(wanted)
            await app.engine.drive(wanted)  # as a worker does, right between the reads
        return await read_row(wanted)

    monkeypatch.setattr(store, "get_execution", a_worker_takes_it_first)
    view = await app.views.job_run(GetJobRun(id=job_id))
    assert taken == [execution_id]
    assert view["run"]["status"] == "Cancelled"
    assert view["ended"] is True and view["cancels"] == []


async def test_a_job_run_s_view_is_cancelled_when_its_workflow_takes_the_cancel_before_its_signals_are_read(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The execution's row, read with the cancel still counted as waiting, then its
    signals, read after a worker took the cancel: none pending, the row still waiting
    for a person, and the page offered the cancel again (the web test's rare failure)."""
    job_id, execution_id = await _cancel_asked_of_a_held_job_run(app)
    store = app.engine.store
    read_signals = store.pending_signals
    taken: list[str] = []

    async def a_worker_takes_them_first(wanted: str) -> list[Row]:
        if wanted == execution_id and not taken:
            taken.append(wanted)
            await app.engine.drive(wanted)  # right between the row's read and this one
        return await read_signals(wanted)

    monkeypatch.setattr(store, "pending_signals", a_worker_takes_them_first)
    view = await app.views.job_run(GetJobRun(id=job_id))
    assert taken == [execution_id]
    assert view["run"]["status"] == "Cancelled"
    assert view["ended"] is True and view["cancels"] == []


async def test_a_timeline_not_over_runs_to_now(app: App) -> None:
    """A step waiting for a person five minutes: the timeline ran to the last event
    (``Timeline 55 ms``, ``wait: 0 ms``, a running bar with no duration); a step waiting
    for its children drew no wait at all. Drawn to the application's clock now."""
    await app.workflows.push(
        PushWorkflows(texts=[WorkflowText(text=ASKS), WorkflowText(text=PARENT)])
    )
    doc = await app.executions.run(RunExecution(workflow="parent"))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    [child] = [c["id"] for s in doc["steps"].values() for c in s["childWorkflowExecutions"]]
    app.engine.clock.offset = timedelta(minutes=5)
    for shown in (child, doc["id"]):
        view = await app.views.execution(GetExecutionView(id=shown))
        assert view["timelineMs"] >= 300_000
        [bar] = view["timeline"]
        assert not bar["ended"] and bar["durationMs"] >= 300_000, bar
        [wait] = bar["waits"]
        assert wait["kind"] == "wait" and wait["open"] and wait["durationMs"] >= 299_000, wait
        assert wait["x"] + wait["width"] >= 999  # up to the end of the drawing


async def test_a_finished_timeline_ends_where_the_execution_did(app: App, tmp_path: Path) -> None:
    path = tmp_path / "waits.yaml"
    path.write_text(WAITS)
    doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
    app.engine.clock.offset = timedelta(hours=1)
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    assert view["timelineMs"] < 60_000
    assert all(bar["ended"] for bar in view["timeline"])


class Numbered(BaseModel):
    n: int


class Said(BaseModel):
    n: int


def judging_registry() -> StepRegistry:
    """``test.flaky`` fails its first attempt for n = 1 (a retry makes it good);
    ``test.picky`` fails for n = 2, for good; ``test.boom`` raises KeyError."""
    registry = StepRegistry.with_builtins()

    @step_type("test.flaky")
    async def flaky(data: Numbered, ctx: StepContext) -> Said:
        if data.n == 1 and ctx.attempt == 1:
            raise StepError("not yet", retryable=True)
        return Said(n=data.n)

    @step_type("test.picky")
    async def picky(data: Numbered, ctx: StepContext) -> Said:
        if data.n == 2:
            raise StepError("two is refused", retryable=False)
        return Said(n=data.n)

    @step_type("test.boom")
    async def boom(data: Numbered, ctx: StepContext) -> Said:
        ctx.logger.warning("about to fail on %d", data.n)
        return {}["missing"]  # type: ignore[no-any-return]

    for handler in (flaky, picky, boom):
        registry.register(handler)
    return registry


@asynccontextmanager
async def judged(db_url: str) -> AsyncIterator[App]:
    engine = Engine(db_url, registry=judging_registry())
    async with engine, App(engine=engine) as application:
        yield application


JUDGED = """\
name: judged
steps:
  - id: each
    type: sys.loop
    input: {items: [0, 1, 2, 3], concurrency: 1}
    steps:
      - id: flaky
        type: test.flaky
        input: {n: "{{ loop.each.item }}"}
        retry: {max_attempts: 2, initial_delay: 10ms}
      - id: picky
        type: test.picky
        input: {n: "{{ loop.each.item }}"}
        continue_on_error: true
        after: [flaky]
"""


async def test_a_step_s_node_is_decided_by_each_iteration_s_final_attempt(
    db_url: str, tmp_path: Path
) -> None:
    """Tour 22b M3: a body step whose first attempt failed once, and whose retry then
    completed, was drawn Failed in a Completed execution. One that failed in one
    iteration and went on (continue_on_error) reads as completed with that many
    failed iterations, not plain Failed."""
    path = tmp_path / "judged.yaml"
    path.write_text(JUDGED)
    async with judged(db_url) as app:
        doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
        assert doc["runtimeStatus"] == "Completed"
        view = await app.views.execution(GetExecutionView(id=doc["id"]))
        picked = await app.views.execution(GetExecutionView(id=doc["id"], iterations={"each": 2}))
    nodes = {n["id"]: n for n in view["nodes"]}
    assert (nodes["flaky"]["status"], nodes["flaky"]["failedIterations"]) == ("Completed", 0)
    assert (nodes["picky"]["status"], nodes["picky"]["failedIterations"]) == ("Completed", 1)
    assert (nodes["each"]["status"], nodes["each"]["failedIterations"]) == ("Completed", 0)
    only = {n["id"]: n for n in picked["nodes"]}  # the one iteration it failed in: Failed
    assert (only["picky"]["status"], only["picky"]["failedIterations"]) == ("Failed", 0)
    assert view["failedAttempt"] is None and view["errorChildren"] == []


BOOMS = """\
name: booms
steps:
  - id: first
    type: test.flaky
    input: {n: 0}
  - {id: explode, type: test.boom, input: {n: 7}, after: [first]}
"""


async def test_a_failed_execution_names_the_attempt_whose_logs_hold_its_traceback(
    db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "booms.yaml"
    path.write_text(BOOMS)
    async with judged(db_url) as app:
        doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
        assert doc["runtimeStatus"] == "Failed"
        view = await app.views.execution(GetExecutionView(id=doc["id"]))
    [explode] = [s for s in doc["steps"].values() if s["stepId"] == "explode"]
    assert view["failedAttempt"] == explode["id"]
    assert view["cancellation"] is None


CHILD = """\
name: scored
input_schema: {type: object, properties: {n: {type: integer}}}
steps:
  - {id: score, type: sys.transform, input: {value: "{{ input.n * 10 }}"}}
  - id: too_big
    type: sys.fail
    when: "{{ input.n > 1 }}"
    input: {message: "{{ input.n }} is too big"}
    after: [score]
"""
SCORES = """\
name: scores
steps:
  - id: each
    type: sys.sub_workflow
    input: {workflow: scored, items: [0, 1, 2], concurrency: 1, input: {n: "{{ loop.each.item }}"}}
"""


async def test_a_failed_sub_workflow_names_and_links_the_child_that_failed(app: App) -> None:
    """Tour 22b M2 and L8: the graph's link opened the first child (it had completed), the
    error named the failed one as text, and the attempt listed children without their
    statuses; its template row showed the template as the value it rendered to."""
    await app.workflows.push(
        PushWorkflows(texts=[WorkflowText(text=CHILD), WorkflowText(text=SCORES)])
    )
    doc = await app.executions.run(RunExecution(workflow="scores"))
    assert doc["runtimeStatus"] == "Failed"
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    failed = doc["error"]["details"]["childWorkflowExecutionId"]
    assert view["errorChildren"] == [failed]
    [node] = [n for n in view["nodes"] if n["id"] == "each"]
    assert (node["child"], node["childFailed"]) == (failed, True)
    [attempt] = view["attempts"]
    assert attempt["errorChildren"] == [failed]
    assert attempt["children"][0] == {"id": failed, "status": "Failed"}
    assert [c["status"] for c in attempt["children"]] == ["Failed", "Completed", "Completed"]
    assert attempt["childCounts"] == {"Failed": 1, "Completed": 2}
    rows = {t["path"]: t for t in attempt["templates"]}
    assert rows["input.input.n"]["value"] == [0, 1, 2] and rows["input.input.n"]["perChild"] == 3


async def test_a_cancel_reads_as_who_when_and_why(app: App) -> None:
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASKS)]))
    doc = await app.executions.run(RunExecution(workflow="asks"))
    await app.executions.cancel(
        CancelExecution(id=doc["id"], by="api-token:ops", reason="wrong window", settle=True)
    )
    view = await app.views.execution(GetExecutionView(id=doc["id"]))
    assert view["execution"]["runtimeStatus"] == "Cancelled"
    cancelled = view["cancellation"]
    assert cancelled is not None
    assert (cancelled["by"], cancelled["reason"]) == ("api-token:ops", "wrong window")
    assert cancelled["at"] == view["execution"]["completedAt"]
    assert view["errorChildren"] == [] and view["failedAttempt"] is None


BIG_LOOP = """\
name: big-loop
steps:
  - id: lp
    type: sys.loop
    input: {items: "{{ range(300) | list }}", concurrency: 20}
    steps:
      - {id: inner, type: sys.transform, input: {value: {got: "{{ loop.lp.item }}"}}}
"""


async def test_the_data_store_tree_is_bounded_and_says_what_it_leaves_out(
    app: App, tmp_path: Path
) -> None:
    """Tour 22b M4: every loop's ``results`` were drawn whole (2,830 nodes, 1 MB of a
    1.5 MB page). The tree now stops at STORE_ENTRIES of a list, STORE_NODES in all."""
    path = tmp_path / "big.yaml"
    path.write_text(BIG_LOOP)
    doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
    view = await app.views.execution(GetExecutionView(id=doc["id"]))

    def walk(node: TreeNode) -> list[TreeNode]:
        return [node, *(n for child in node["children"] for n in walk(child))]

    nodes = {n["path"]: n for n in walk(view["storeTree"])}
    assert len(nodes) <= STORE_NODES + 1
    results = nodes["steps.lp.output.results"]
    assert results["size"] == 300 and len(results["children"]) == STORE_ENTRIES
    assert results["more"] == 300 - STORE_ENTRIES
    assert nodes["steps.lp.output.results[3].inner.got"]["value"] == 3
    assert view["storeLeftOut"] >= 300 - STORE_ENTRIES
    assert view["dataStore"]["steps"]["lp"]["output"]["results"][299]  # the console's: whole


async def _cancel_asked_of_a_held_job_run(app: App) -> tuple[str, str]:
    """A job run whose one workflow waits for a person, with a cancel asked of it that no
    worker has taken yet: its id, and its workflow's execution id."""
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASKS)]))
    job = await app.job_runs.create(
        CreateJobRun(text="name: nightly\nworkflows:\n  - {workflow: asks}\n", hold=True)
    )
    await app.job_runs.drive(DriveJobRun(id=job["id"]))
    await app.job_runs.cancel(CancelJobRun(id=job["id"], by="ops", reason="no"))
    execution_id = (await app.job_runs.get(GetJobRun(id=job["id"])))["runs"][0]["executionId"]
    return job["id"], execution_id

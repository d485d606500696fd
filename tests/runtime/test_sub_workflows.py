"""sys.sub_workflow: children started with the parent's commit, awaited durably, cancelled with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowledger import Engine, StepRegistry
from flowledger.config import Limits, Settings
from flowledger.runtime.orphans import this_host
from flowledger.storage import ExecutionQuery
from tests.runtime.steps_for_tests import Recorder
from tests.runtime.support import (
    latest,
    running_worker,
    start_and_park,
    wait_for_status,
    wait_until,
    yaml,
)

CHILD = yaml(
    """
    name: child
    input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
    steps:
      - id: double
        type: sys.transform
        input: {value: "{{ input.n * 2 }}"}
      - id: check
        type: sys.fail
        when: "{{ input.n < 0 }}"
        input: {message: "negative: {{ input.n }}"}
    output: "{{ steps.double.output }}"
    """
)

PARENT = yaml(
    """
    name: parent
    steps:
      - id: fan
        type: sys.sub_workflow
        input:
          workflow: child
          items: "{{ input.numbers }}"
          concurrency: 2
          input: {n: "{{ loop.fan.item }}"}
      - id: total
        type: sys.transform
        input: {value: "{{ steps.fan.output.executions | map(attribute='output') | sum }}"}
    output: "{{ steps.total.output }}"
    """
)


async def _children(engine: Engine, parent_id: str) -> list[dict]:  # type: ignore[type-arg]
    return await engine.list_executions(ExecutionQuery(parent_id=parent_id, limit=100))


async def test_one_child_per_item_with_outputs_and_lineage(engine: Engine) -> None:
    await engine.push(engine.load_text(CHILD))
    doc = await engine.run(engine.load_text(PARENT), {"numbers": [1, 2, 3, 4, 5]})
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == 30
    fan = latest(doc, "fan")
    executions = fan["outputData"]["executions"]
    assert [e["output"] for e in executions] == [2, 4, 6, 8, 10]
    assert {e["runtimeStatus"] for e in executions} == {"Completed"}
    assert fan["childWorkflowExecutions"] == [{"id": e["id"]} for e in executions]
    children = await _children(engine, doc["id"])
    assert len(children) == 5
    for child in children:
        assert child["parentWorkflowExecutionId"] == doc["id"]
        assert child["rootWorkflowExecutionId"] == doc["id"]
        assert child["correlationId"] == doc["correlationId"]


async def test_a_single_child_by_name_and_version(engine: Engine) -> None:
    first, _ = await engine.push(engine.load_text(CHILD))
    await engine.push(engine.load_text(CHILD.replace("input.n * 2", "input.n * 3")))
    text = yaml(
        """
        name: single
        steps:
          - id: one
            type: sys.sub_workflow
            input: {workflow: child, version: 1, input: {n: 7}}
          - id: latest
            type: sys.sub_workflow
            input: {workflow: child, input: {n: 7}}
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert latest(doc, "one")["outputData"]["executions"][0]["output"] == 14
    assert latest(doc, "latest")["outputData"]["executions"][0]["output"] == 21
    assert first.version == 1


async def test_workers_run_children_and_wake_the_parent(
    db_url: str, registry: StepRegistry
) -> None:
    async with Engine(db_url, registry=registry) as engine:
        await engine.push(engine.load_text(CHILD))
        parent_id = await engine.start(engine.load_text(PARENT), {"numbers": [1, 2, 3]})
        async with running_worker(engine):
            done = await wait_for_status(engine, parent_id, "Completed")
    assert done["output"] == 12


async def test_a_failed_child_fails_the_step_with_its_error(engine: Engine) -> None:
    await engine.push(engine.load_text(CHILD))
    doc = await engine.run(engine.load_text(PARENT), {"numbers": [1, -2, 3]})
    assert doc["runtimeStatus"] == "Failed"
    message = latest(doc, "fan")["error"]["message"]
    assert "ended Failed" in message and "negative: -2" in message
    children = await _children(engine, doc["id"])
    assert {c["runtimeStatus"] for c in children} <= {"Completed", "Failed", "Cancelled"}


async def test_a_retry_runs_only_the_children_that_did_not_complete(
    engine: Engine, recorder: Recorder
) -> None:
    """The completed children's side effects happen once: a retry after a fix to the
    child workflow runs the failed child and those never started, and keeps the rest."""
    charge = """
        name: charge
        input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
        steps:
          - {id: call, type: test.flaky, input: {name: "c{{ input.n }}"}}
          - {id: check, type: sys.fail, when: "{{ input.n == 2 }}", input: {message: "bad {{ input.n }}"}}
        output: "{{ input.n }}"
    """
    await engine.push(engine.load_text(yaml(charge)))
    parent = yaml(
        """
        name: charge_all
        steps:
          - id: kids
            type: sys.sub_workflow
            input: {workflow: charge, items: [0, 1, 2, 3], concurrency: 1, input: {n: "{{ loop.kids.item }}"}}
        output: "{{ steps.kids.output.executions | map(attribute='output') | list }}"
        """
    )
    failed = await engine.run(engine.load_text(parent))
    assert failed["runtimeStatus"] == "Failed"
    assert recorder.calls == {"c0": 1, "c1": 1, "c2": 1}
    await engine.push(engine.load_text(yaml(charge.replace("input.n == 2", "false"))))
    await engine.retry(failed["id"])
    done = await engine.settle(failed["id"])
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == [0, 1, 2, 3]
    assert recorder.calls == {"c0": 1, "c1": 1, "c2": 2, "c3": 1}
    first, second = sorted(
        (s for s in done["steps"].values() if s["stepId"] == "kids"), key=lambda s: s["attempt"]
    )
    kept = [c["id"] for c in first["childWorkflowExecutions"][:2]]
    assert [e["id"] for e in second["outputData"]["executions"][:2]] == kept
    assert len(await _children(engine, failed["id"])) == 5  # 4 items, one of them twice
    planned = [e for e in await engine.events(failed["id"]) if e["kind"] == "step.children_planned"]
    assert [e["detail"]["reused"] for e in planned] == [0, 2]


async def test_recursion_stops_at_the_depth_limit(engine: Engine) -> None:
    text = yaml(
        """
        name: forever
        steps:
          - id: again
            type: sys.sub_workflow
            input: {workflow: forever}
        """
    )
    await engine.push(engine.load_text(text))
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert "ended Failed" in doc["error"]["message"]
    deepest = await engine.list_executions(ExecutionQuery(workflow="forever", limit=100))
    assert len(deepest) == 11  # the root and ten levels of children
    messages = [(d["error"] or {}).get("message", "") for d in deepest]
    # The deepest says why; each parent above it passes its child's error on.
    assert sum(m.startswith("sub-workflow depth limit reached") for m in messages) == 1
    assert all("sub-workflow depth limit reached" in m for m in messages)


FAN_OUT = """
name: fan
steps:
  - id: again
    type: sys.sub_workflow
    when: "{{ input.level < 4 }}"
    input:
      workflow: fan
      items: "{{ [1, 2, 3] }}"
      input: {level: "{{ input.level + 1 }}"}
"""


async def test_a_root_starts_at_most_its_budget_of_descendants(
    db_url: str, registry: StepRegistry
) -> None:
    """Three children a level, four levels: 120 descendants. Under the depth cap alone
    the tree is k**depth; the root's budget (here 30) stops it, whatever the shape."""
    settings = Settings(db_url=db_url, limits=Limits(max_descendants=30))
    async with Engine(db_url, registry=registry, settings=settings) as engine:
        await engine.push(engine.load_text(FAN_OUT))
        doc = await engine.run(engine.load_text(FAN_OUT), {"level": 0})
        assert doc["runtimeStatus"] == "Failed"
        assert "ended Failed" in doc["error"]["message"]
        every = await engine.list_executions(ExecutionQuery(workflow="fan", limit=1000))
        assert len(every) - 1 <= 30  # the root, and at most its budget below it
        why = [(d["error"] or {}).get("message", "") for d in every]
        assert any(m.startswith("starting 3 more sub-workflow executions would") for m in why)
        # Another root has a budget of its own: two levels (12 descendants) fit in it.
        other = await engine.run(engine.load_text(FAN_OUT), {"level": 2})
        assert other["runtimeStatus"] == "Completed"


async def test_an_unknown_child_workflow_fails_clearly(engine: Engine) -> None:
    text = yaml(
        """
        name: orphan
        steps:
          - {id: call, type: sys.sub_workflow, input: {workflow: nowhere}}
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert "no workflow named 'nowhere'" in doc["error"]["message"]


async def test_a_parent_waiting_on_children_survives_a_restart(
    db_url: str, registry: StepRegistry
) -> None:
    slow_child = yaml(
        """
        name: slow-child
        steps:
          - {id: nap, type: sys.delay, input: {duration: 300ms}}
        output: done
        """
    )
    parent = yaml(
        """
        name: waiting-parent
        steps:
          - id: kids
            type: sys.sub_workflow
            input: {workflow: slow-child, items: [1, 2, 3], concurrency: 3}
        """
    )
    async with Engine(db_url, registry=registry) as first:
        await first.push(first.load_text(slow_child))
        # A worker-style run: the parent starts its children, then parks waiting for them.
        parent_id = await start_and_park(first, first.load_text(parent))
    async with Engine(db_url, registry=registry) as second:  # nobody ran anything meanwhile
        children = await _children(second, parent_id)
        assert [c["runtimeStatus"] for c in children] == ["NotStarted"] * 3
        async with running_worker(second):
            done = await wait_for_status(second, parent_id, "Completed")
    assert [e["output"] for e in latest(done, "kids")["outputData"]["executions"]] == ["done"] * 3


async def test_cancelling_a_parent_cancels_its_children(
    db_url: str, registry: StepRegistry
) -> None:
    waiting_child = yaml(
        """
        name: asks
        steps:
          - {id: ask, type: sys.wait_for_input, input: {prompt: "?"}}
        """
    )
    parent = yaml(
        """
        name: asks-parent
        steps:
          - {id: kids, type: sys.sub_workflow, input: {workflow: asks, items: [1, 2]}}
        """
    )
    async with Engine(db_url, registry=registry) as engine:
        await engine.push(engine.load_text(waiting_child))
        doc = await engine.run(engine.load_text(parent))
        # Every child waits for a person, so the parent does too (and `run` stops here).
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        assert len(await engine.pending_inputs(doc["id"])) == 2
        await engine.cancel(doc["id"], by="test", reason="changed my mind")
        async with running_worker(engine):
            cancelled = await wait_for_status(engine, doc["id"], "Cancelled")
            for child in await _children(engine, doc["id"]):
                await wait_for_status(engine, child["id"], "Cancelled")
    assert cancelled["error"]["message"] == "cancelled: changed my mind"
    assert latest(cancelled, "kids")["status"] == "Cancelled"


async def test_answering_a_child_finishes_the_parent(engine: Engine) -> None:
    waiting_child = yaml(
        """
        name: asks
        steps:
          - {id: ask, type: sys.wait_for_input, input: {prompt: "?"}}
        output: "{{ steps.ask.output }}"
        """
    )
    parent = yaml(
        """
        name: asks-parent
        steps:
          - {id: kid, type: sys.sub_workflow, input: {workflow: asks}}
        output: "{{ steps.kid.output.executions[0].output }}"
        """
    )
    await engine.push(engine.load_text(waiting_child))
    doc = await engine.run(engine.load_text(parent))
    [pending] = await engine.pending_inputs(doc["id"])
    await engine.submit_input(pending["executionId"], "ask", {"ok": 1})
    await engine.settle(pending["executionId"])
    done = await wait_until(engine, doc["id"], lambda d: d["runtimeStatus"] == "Completed")
    assert done["output"] == {"ok": 1}
    await asyncio.sleep(0)


async def _parked_parent_of_two(engine: Engine) -> tuple[str, str]:
    """A parent of two children, parked while they wait to run; its id and the first's."""
    await engine.push(engine.load_text(CHILD))
    parent_id = await engine.start(engine.load_text(PARENT), {"numbers": [1, 2]})
    epoch = await engine.store.acquire_lease(parent_id, engine.owner, engine.lease)
    assert epoch is not None
    _, parked_until = await engine.run_owned(parent_id, park_after=0.1)
    await engine.store.release_lease(parent_id, epoch, parked_until)
    [first, _] = [c["id"] for c in await _children(engine, parent_id)]
    return parent_id, first


async def test_run_takes_over_a_child_whose_holder_died(
    db_url: str, registry: StepRegistry
) -> None:
    from datetime import timedelta

    async with Engine(db_url, registry=registry, lease=timedelta(seconds=1)) as engine:
        parent_id, first = await _parked_parent_of_two(engine)
        # A process that took the first child and died: its lease has a second to run.
        ghost = await engine.store.acquire_lease(first, "ghost:1:dead", timedelta(seconds=1))
        assert ghost is not None
        done = await engine.drive(parent_id)  # what `flowledger run` does after a restart
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == 6


async def test_run_takes_over_at_once_a_child_held_by_a_dead_process_here(
    db_url: str, registry: StepRegistry
) -> None:
    """A killed `flowledger run` on this host held the child: its pid is gone, so the
    next run takes the child at once, not after the lease (here an hour)."""
    from datetime import timedelta

    dead_owner = f"{this_host()}:{_reaped_pid()}:gone"
    async with Engine(db_url, registry=registry, lease=timedelta(minutes=1)) as engine:
        parent_id, first = await _parked_parent_of_two(engine)
        held = await engine.store.acquire_lease(first, dead_owner, timedelta(hours=1))
        assert held is not None
        done = await asyncio.wait_for(engine.drive(parent_id), timeout=60)
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == 6


def _reaped_pid() -> int:
    """The pid of a process that has ended and been reaped: no process has it now."""
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


async def test_a_parent_waiting_through_its_children_lists_what_they_wait_for(
    engine: Engine,
) -> None:
    asks = yaml(
        """
        name: asks-deeper
        steps:
          - {id: ask, type: sys.wait_for_input, input: {prompt: "name?", assignee: ops}}
        output: "{{ steps.ask.output }}"
        """
    )
    middle = yaml(
        """
        name: asks-middle
        steps:
          - {id: inner, type: sys.sub_workflow, input: {workflow: asks-deeper}}
        """
    )
    parent = yaml(
        """
        name: asks-top
        steps:
          - {id: kid, type: sys.sub_workflow, input: {workflow: asks-middle}}
        """
    )
    await engine.push(engine.load_text(asks))
    await engine.push(engine.load_text(middle))
    doc = await engine.run(engine.load_text(parent))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    [pending] = doc["pendingInputs"]
    assert pending["executionId"] != doc["id"]
    assert (pending["stepId"], pending["prompt"], pending["assignee"]) == ("ask", "name?", "ops")
    assert (await engine.get_execution(doc["id"]))["pendingInputs"] == [pending]
    grandchild = await engine.get_execution(pending["executionId"])
    assert grandchild["rootWorkflowExecutionId"] == doc["id"]
    assert grandchild["pendingInputs"] == [pending]


LOOP_OF_CHILDREN = """
name: loop-of-children
steps:
  - id: each
    type: sys.loop
    input: {items: [5, 2, 5], concurrency: 3}
    steps:
      - {id: kid, type: sys.sub_workflow, input: {workflow: asks-when-five, input: {n: "{{ loop.each.item }}"}}}
"""
ASKS_WHEN_FIVE = """
name: asks-when-five
steps:
  - {id: ask, type: sys.wait_for_input, when: "{{ input.n == 5 }}", input: {prompt: "ok?"}}
"""


async def test_a_loop_whose_childrens_other_iterations_wait_for_people_awaits_input(
    db_url: str, registry: StepRegistry
) -> None:
    """One iteration's child completed in the refresh that saw the others' children
    wait: the parent stayed InProgress for ever (``run`` never returned; under a worker
    it showed no pendingInputs)."""
    async with Engine(db_url, registry=registry) as engine:
        await engine.push(engine.load_text(ASKS_WHEN_FIVE))
        workflow = engine.load_text(LOOP_OF_CHILDREN)
        for _ in range(3):  # it depended on when the children's signals arrived
            doc = await asyncio.wait_for(engine.run(workflow), 20)
            assert doc["runtimeStatus"] == "AwaitingUserInput"
            assert len(doc["pendingInputs"]) == 2
        parent_id = await engine.start(workflow)
        async with running_worker(engine):
            waiting = await wait_for_status(engine, parent_id, "AwaitingUserInput")
        assert len(waiting["pendingInputs"]) == 2


NESTED_LOOPS_THEN_A_CHILD = """
name: nested-then-child
steps:
  - id: outer
    type: sys.loop
    input: {items: [1, 2, 3], concurrency: 3}
    steps:
      - id: inner
        type: sys.loop
        input: {items: "{{ range(loop.outer.item * 2) | list }}", concurrency: 4}
        steps:
          - {id: nap, type: test.slow, input: {seconds: 0.01}}
      - {id: kid, type: sys.sub_workflow, input: {workflow: child, input: {n: 1}}}
"""


async def test_a_child_not_yet_written_does_not_count_as_waiting_for_a_person(
    engine: Engine,
) -> None:
    """A child signal refreshed the waiting steps while another iteration's step had
    just created its child, in a round not yet committed: that child's row was not
    found, counted as waiting for a person, and ``run`` parked the parent as
    AwaitingUserInput with nothing waiting (5 runs in 8 in a user's tour)."""
    await engine.push(engine.load_text(CHILD))
    workflow = engine.load_text(NESTED_LOOPS_THEN_A_CHILD)
    for _ in range(6):  # it depended on when the children's signals arrived
        doc = await asyncio.wait_for(engine.run(workflow), 20)
        assert (doc["runtimeStatus"], doc["pendingInputs"]) == ("Completed", [])


NEEDS_A_SECRET = """
name: needs-a-secret
steps:
  - id: call
    type: sys.http_request
    input: {url: "http://127.0.0.1:9/x", headers: {X-Key: "{{ secrets.API_KEY }}"}}
"""


async def test_a_child_that_cannot_run_here_does_not_hold_run_for_ever(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's secrets file could not be read: the child stopped with the error, and
    the parent waited for it for ever (``flowledger run`` hung). It returns, unfinished,
    for a worker that can run the child."""
    await engine.push(engine.load_text(NEEDS_A_SECRET))
    monkeypatch.setenv("FLOWLEDGER_SECRETS_FILE", str(tmp_path / "missing.env"))
    parent = "name: calls-it\nsteps:\n  - {id: kid, type: sys.sub_workflow, input: {workflow: needs-a-secret}}\n"
    doc = await asyncio.wait_for(engine.run(engine.load_text(parent)), 20)
    assert doc["runtimeStatus"] == "InProgress"


SLOW_CHILD = """
name: slow-child
steps:
  - {id: nap, type: sys.delay, input: {duration: 30s}}
"""
STRUCTURAL_TIMEOUTS = """
name: structural-timeouts
steps:
  - id: each
    type: sys.loop
    timeout: 300ms
    continue_on_error: true
    input: {items: [1, 2]}
    steps:
      - {id: nap, type: sys.delay, input: {duration: 30s}}
  - {id: kid, type: sys.sub_workflow, timeout: 300ms, continue_on_error: true, input: {workflow: slow-child}}
  - id: ask
    type: sys.wait_for_input
    timeout: 300ms
    input: {prompt: "ok?", on_timeout: {default: {ok: false}}}
"""


async def test_a_timeout_bounds_a_loop_its_children_and_a_wait(engine: Engine) -> None:
    """They were accepted and ignored: each ran its 30 s (a wait for ever)."""
    await engine.push(engine.load_text(SLOW_CHILD))
    workflow = engine.load_text(STRUCTURAL_TIMEOUTS)
    parent_id = await engine.start(workflow)
    async with running_worker(engine):
        doc = await wait_for_status(engine, parent_id, "Completed")
    each, kid, ask = (latest(doc, s) for s in ("each", "kid", "ask"))
    assert (each["status"], each["error"]["message"]) == ("Failed", "timed out after 0.3s")
    assert (kid["status"], kid["error"]["message"]) == ("Failed", "timed out after 0.3s")
    assert (ask["status"], ask["outputData"]) == ("Completed", {"ok": False})  # on_timeout
    [child] = await engine.store.list_executions(ExecutionQuery(parent_id=parent_id))
    assert child["runtime_status"] == "Cancelled"

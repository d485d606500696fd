"""Cancel, retry in place and rerun from a step: what people ask of a workflow engine most."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.errors import ConflictError, InputError
from tests.runtime.steps_for_tests import Recorder
from tests.runtime.support import (
    latest,
    running_worker,
    step_status,
    wait_for_status,
    wait_until,
    yaml,
)

PIPELINE = yaml(
    """
    name: pipeline
    variables: {count: 0}
    steps:
      - id: fetch
        type: test.flaky
        input: {name: fetch}
      - id: bump
        type: sys.set_variable
        input: {name: count, op: increment, value: 1}
      - id: work
        type: test.flaky
        input: {name: work, fail_times: 1}
      - id: report
        type: sys.transform
        input: {value: "{{ steps.fetch.output.value }}/{{ steps.work.output.attempt }}/{{ variables.count }}"}
    output: "{{ steps.report.output }}"
    """
)


async def test_cancel_stops_running_steps(engine: Engine, recorder: Recorder) -> None:
    text = yaml(
        """
        name: long
        steps:
          - {id: first, type: test.slow, input: {seconds: 30, name: long}}
          - {id: never, type: test.flaky, input: {name: never}}
        """
    )
    execution_id = await engine.start(engine.load_text(text), hold=True)
    task = asyncio.create_task(engine.drive(execution_id))
    await wait_until(engine, execution_id, lambda d: step_status(d, "first") == "InProgress")
    await engine.cancel(execution_id, by="ops", reason="wrong data")
    doc = await asyncio.wait_for(task, 10)
    assert doc["runtimeStatus"] == "Cancelled"
    assert latest(doc, "first")["status"] == "Cancelled"
    assert recorder.running == 0  # the handler saw the cancellation and stopped
    assert recorder.calls["never"] == 0
    events = await engine.events(execution_id)
    [cancelled] = [e for e in events if e["kind"] == "execution.cancelled"]
    assert cancelled["detail"] == {"reason": "wrong data", "by": "ops"}


async def test_cancel_before_start_and_after_the_end(engine: Engine) -> None:
    workflow = engine.load_text("name: tiny\nsteps: [{id: a, type: sys.no_action}]\n")
    queued = await engine.start(workflow)
    await engine.cancel(queued)
    doc = await engine.settle(queued)
    assert doc["runtimeStatus"] == "Cancelled" and doc["steps"] == {}
    done = await engine.run(workflow)
    with pytest.raises(ConflictError, match="already ended: CompletedWithNoActionTaken"):
        await engine.cancel(done["id"])


async def test_retry_reruns_failed_steps_and_keeps_completed_outputs(
    engine: Engine, recorder: Recorder
) -> None:
    doc = await engine.run(engine.load_text(PIPELINE))
    assert doc["runtimeStatus"] == "Failed"
    assert await engine.retry(doc["id"], by="ops") == ["work"]
    done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == "fetch/2/1"
    assert recorder.calls["fetch"] == 1  # its completed output was kept, not recomputed
    assert [s["attempt"] for s in done["steps"].values() if s["stepId"] == "work"] == [1, 2]
    assert done["error"] is None and done["failedAt"] is None
    kinds = [e["kind"] for e in await engine.events(doc["id"])]
    assert kinds.count("execution.failed") == 1 and "execution.retried" in kinds
    with pytest.raises(ConflictError, match="only a Failed execution can be retried"):
        await engine.retry(doc["id"])


async def test_of_retries_sent_at_once_one_wins_and_the_others_are_conflicts(
    engine: Engine, registry: StepRegistry
) -> None:
    doc = await engine.run(engine.load_text(PIPELINE))
    assert doc["runtimeStatus"] == "Failed"
    async with (
        Engine(engine.db_url, registry=registry) as second,
        Engine(engine.db_url, registry=registry) as third,
    ):
        answers = await asyncio.gather(
            *(e.retry(doc["id"]) for e in (engine, second, third)), return_exceptions=True
        )
    assert sorted(type(a).__name__ for a in answers) == ["ConflictError", "ConflictError", "list"]
    done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert [s["attempt"] for s in done["steps"].values() if s["stepId"] == "work"] == [1, 2]


async def test_retry_inside_a_loop_keeps_finished_iterations(
    engine: Engine, recorder: Recorder
) -> None:
    text = yaml(
        """
        name: loop-retry
        steps:
          - id: each
            type: sys.loop
            input: {items: [a, b, c]}
            steps:
              - id: item
                type: test.flaky
                input:
                  name: "{{ loop.each.item }}"
                  fail_times: "{{ 1 if loop.each.item == 'b' else 0 }}"
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    await engine.retry(doc["id"])
    done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed", done["error"]
    results = latest(done, "each")["outputData"]["results"]
    assert [r["item"]["value"] for r in results] == ["a", "b", "c"]
    assert recorder.calls == {"a": 1, "b": 2, "c": 1}


async def test_a_worker_picks_up_a_retried_execution(db_url: str, registry: StepRegistry) -> None:
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(PIPELINE))
        await engine.retry(doc["id"])
        async with running_worker(engine):
            done = await wait_for_status(engine, doc["id"], "Completed")
    assert done["output"] == "fetch/2/1"


async def test_rerun_from_a_step_reuses_what_came_before(
    engine: Engine, recorder: Recorder
) -> None:
    first = await engine.run(engine.load_text(PIPELINE.replace("fail_times: 1", "fail_times: 0")))
    assert first["runtimeStatus"] == "Completed"
    new_id = await engine.rerun(first["id"], "work", by="ops")
    doc = await engine.settle(new_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["rerunOf"] == first["id"]
    assert doc["correlationId"] == first["correlationId"]
    assert recorder.calls == {"fetch": 1, "work": 2}  # fetch reused, work and the rest ran
    assert doc["output"] == "fetch/1/1"  # the variable set before 'work' was carried over
    reused = [e for e in await engine.events(new_id) if e["kind"] == "step.reused"]
    assert sorted(e["stepId"] for e in reused) == ["bump", "fetch"]
    assert latest(doc, "fetch")["outputData"] == latest(first, "fetch")["outputData"]
    original = await engine.get_execution(first["id"])
    assert original == {**first, "lastActivityAt": original["lastActivityAt"]}  # untouched


async def test_a_rerun_keeps_the_variables_a_reused_loop_set(engine: Engine) -> None:
    """Set in the bodies of reused (nested, concurrent) loops, not only at the top."""
    text = yaml(
        """
        name: tally
        variables: {total: 0, seen: [], last: null}
        steps:
          - id: outer
            type: sys.loop
            input: {items: [[1, 2, 3], [4, 5]], concurrency: 2}
            steps:
              - id: inner
                type: sys.loop
                input: {items: "{{ loop.outer.item }}", concurrency: 2}
                steps:
                  - id: add
                    type: sys.set_variable
                    input: {name: total, op: increment, value: "{{ loop.inner.item }}"}
                  - id: note
                    type: sys.set_variable
                    input: {name: seen, op: append, value: "{{ loop.inner.item }}"}
          - id: mark
            type: sys.set_variable
            input: {name: last, value: done}
          - id: report
            type: sys.transform
            input: {value: "{{ variables.total }}/{{ variables.seen | sort }}/{{ variables.last }}"}
        output: "{{ steps.report.output }}"
        """
    )
    first = await engine.run(engine.load_text(text))
    assert first["output"] == "15/[1,2,3,4,5]/done"
    again = await engine.settle(await engine.rerun(first["id"], "report", by="ops"))
    assert again["output"] == first["output"]
    assert again["variables"] == first["variables"]

    def iterations(doc: dict[str, Any]) -> list[tuple[str, str]]:
        body = [s for s in doc["steps"].values() if s["loop"]]
        return sorted((s["stepId"], json.dumps(s["loop"], sort_keys=True)) for s in body)

    # The reused loop's iterations come with it: only the loop's own row was copied.
    assert iterations(again) == iterations(first) and len(iterations(first)) == 12


async def test_rerun_on_the_latest_version_checks_the_reused_steps(engine: Engine) -> None:
    first = await engine.run(engine.load_text(PIPELINE))
    await engine.push(
        engine.load_text(
            PIPELINE.replace(
                "type: test.flaky\n    input: {name: fetch}",
                "type: sys.transform\n    input: {value: {value: x}}",
            )
        )
    )
    with pytest.raises(ConflictError, match=r"'fetch' changed from test.flaky to sys.transform"):
        await engine.rerun(first["id"], "work", version="latest")
    fixed = PIPELINE.replace("fail_times: 1", "fail_times: 0").replace(
        "name: pipeline", "name: pipeline\ndescription: fixed"
    )
    await engine.push(engine.load_text(fixed))
    new_id = await engine.rerun(first["id"], "work", version="latest")
    doc = await engine.settle(new_id)
    assert doc["runtimeStatus"] == "Completed"
    assert doc["workflowVersion"] == 3
    assert doc["output"] == "fetch/1/1"


LOOPED = """
name: looped
variables: {total: 0}
steps:
  - id: each
    type: sys.loop
    input: {items: [1, 2, 3]}
    steps:
      - {id: add, type: sys.set_variable, input: {name: total, op: increment, value: 1}}
      - {id: tag, type: sys.transform, input: {value: "{{ loop.each.item }}"}}
  - {id: fin, type: sys.transform, after: [each], input: {value: "{{ variables.total }}"}}
"""


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("type: sys.set_variable, input: {name: total, op: increment, value: 1}",
          "type: sys.transform, input: {value: 1}"),
         "'add' changed from sys.set_variable to sys.transform"),
        (('      - {id: tag, type: sys.transform, input: {value: "{{ loop.each.item }}"}}\n', ""),
         "'tag' no longer exists in version 2"),
        (("  - {id: fin,", "      - {id: more, type: sys.no_action}\n  - {id: fin,"),
         "loop 'each' has new steps in version 2: ['more']"),
    ],
)  # fmt: skip
async def test_rerun_on_the_latest_version_checks_a_reused_loops_body(
    engine: Engine, change: tuple[str, str], problem: str
) -> None:
    """Only top-level steps were compared: a body step removed or retyped was reused,
    and the new execution's variables were rebuilt from steps version 2 lacks."""
    first = await engine.run(engine.load_text(LOOPED))
    assert first["output"] is None and first["runtimeStatus"] == "Completed"
    await engine.push(engine.load_text(LOOPED))
    await engine.push(engine.load_text(LOOPED.replace(*change)))
    with pytest.raises(ConflictError, match=re.escape(problem)):
        await engine.rerun(first["id"], "fin", version="latest")


async def test_rerun_refusals_say_why(engine: Engine) -> None:
    first = await engine.run(engine.load_text(PIPELINE))
    with pytest.raises(ConflictError, match="'work' runs before it but did not complete"):
        await engine.rerun(first["id"], "report")
    with pytest.raises(Exception, match="has no step 'nope'"):
        await engine.rerun(first["id"], "nope")
    looped = await engine.run(
        engine.load_text(
            "name: l\nsteps:\n  - id: each\n    type: sys.loop\n    input: {items: [1]}\n"
            "    steps: [{id: body, type: sys.no_action}]\n"
        )
    )
    with pytest.raises(InputError, match="rerun from the loop step 'each'"):
        await engine.rerun(looped["id"], "body")


async def test_a_cancel_sent_while_nothing_runs_is_applied_by_the_next_worker(
    db_url: str, registry: StepRegistry
) -> None:
    text = yaml(
        """
        name: sleeper
        steps:
          - {id: nap, type: sys.delay, input: {duration: 1h}}
          - {id: after, type: test.flaky, input: {name: after}}
        """
    )
    async with Engine(db_url, registry=registry) as first:
        execution_id = await first.start(first.load_text(text))
        epoch = await first.store.acquire_lease(execution_id, first.owner, first.lease)
        assert epoch is not None
        _, parked_until = await first.run_owned(execution_id, park_after=1.0)
        await first.store.release_lease(execution_id, epoch, parked_until)
        assert parked_until is not None  # asleep for an hour, held by nobody
    async with Engine(db_url, registry=registry) as second:
        await second.cancel(execution_id, by="ops")
        async with running_worker(second):
            doc = await wait_for_status(second, execution_id, "Cancelled")
    assert latest(doc, "nap")["status"] == "Cancelled"
    assert step_status(doc, "after") is None


async def test_cancel_aborts_an_http_request_in_flight(engine: Engine) -> None:
    from tests.steps.http_server import serve

    with serve() as base:
        text = yaml(
            f"""
            name: slow-call
            steps:
              - id: call
                type: sys.http_request
                input: {{url: "{base}/slow?s=60", timeout: 120s}}
            """
        )
        execution_id = await engine.start(engine.load_text(text), hold=True)
        task = asyncio.create_task(engine.drive(execution_id))
        await wait_until(engine, execution_id, lambda d: step_status(d, "call") == "InProgress")
        await engine.cancel(execution_id)
        # The request would take a minute; the cancel ends it at the next signal poll.
        doc = await asyncio.wait_for(task, 15)
    assert doc["runtimeStatus"] == "Cancelled"
    assert latest(doc, "call")["status"] == "Cancelled"

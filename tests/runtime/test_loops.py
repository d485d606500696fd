"""``sys.loop`` with ``until`` (runtime.loops): polling and cursor paging, its bound, its
errors, cancel, retry and recovery, on SQLite and PostgreSQL; and ``loop.<id>.previous``.

The HTTP ones run against a real local server (tests/steps/http_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flowledger import Engine, EngineClosedError, StepRegistry
from flowledger.runtime.recovery import CRASH_MESSAGE
from tests.conftest import RunYaml
from tests.raw_sql import run_sql
from tests.runtime.steps_for_tests import Recorder
from tests.runtime.support import latest, wait_until, yaml
from tests.steps.http_server import serve


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve() as url:
        yield url


def _body_runs(doc: dict[str, Any], step_id: str) -> list[dict[str, Any]]:
    """The step executions of a body step, by iteration then attempt."""
    runs = [s for s in doc["steps"].values() if s["stepId"] == step_id]
    return sorted(runs, key=lambda s: (list(s["loop"].values()), s["attempt"]))


async def test_an_until_loop_polls_until_a_variable_says_done(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: poll_counter
        variables: {checks: 0}
        steps:
          - id: poll
            type: sys.loop
            input:
              until: "{{ variables.checks >= 3 and steps.seen.output.index == loop.poll.index }}"
              max_iterations: 10
            steps:
              - {id: check, type: sys.set_variable, input: {name: checks, op: increment}}
              - {id: nap, type: sys.delay, input: {duration: 20ms}}
              - id: seen
                type: sys.transform
                input:
                  value:
                    index: "{{ loop.poll.index }}"
                    before: "{{ loop.poll.previous.check.value if loop.poll.previous else none }}"
        output: "{{ steps.poll.output }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    out = doc["output"]
    assert out["count"] == 3
    assert [r["seen"] for r in out["results"]] == [
        {"index": 0, "before": None},
        {"index": 1, "before": 1},
        {"index": 2, "before": 2},
    ]
    assert doc["variables"] == {"checks": 3}
    naps = _body_runs(doc, "nap")
    assert [(s["loop"], s["status"]) for s in naps] == [
        ({"poll": i}, "Completed") for i in range(3)
    ]
    # The loop step keeps until as written: it is rendered after each iteration.
    assert latest(doc, "poll")["inputData"]["until"].startswith("{{ variables.checks >= 3")


async def test_an_until_loop_polls_an_http_endpoint_until_the_job_is_done(
    run_yaml: RunYaml, base: str, request: pytest.FixtureRequest
) -> None:
    url = f"{base}/poll/{request.node.name}?ready_after=3"
    doc = await run_yaml(
        """
        name: poll_job
        input_schema: {type: object, properties: {url: {type: string}}}
        steps:
          - id: wait_for_job
            type: sys.loop
            input: {until: "{{ steps.check.output.body.state == 'done' }}", max_iterations: 10}
            steps:
              - {id: check, type: sys.http_request, input: {url: "{{ input.url }}"}}
              - id: nap
                type: sys.delay
                when: "{{ steps.check.output.body.state != 'done' }}"
                input: {duration: 20ms}
        output: "{{ (steps.wait_for_job.output.results | last).check.body }}"
        """,
        {"url": url},
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == {"state": "done", "result": 42, "calls": 3}
    assert [s["status"] for s in _body_runs(doc, "nap")] == ["Completed", "Completed", "Disabled"]
    assert latest(doc, "wait_for_job")["outputData"]["count"] == 3


CURSOR_PAGING = """
name: cursor_paging
input_schema: {type: object, properties: {url: {type: string}}}
steps:
  - id: pages
    type: sys.loop
    input:
      until: "{{ steps.fetch.output.body.nextCursor is none }}"
      max_iterations: 20
    steps:
      - id: fetch
        type: sys.http_request
        input:
          url: "{{ input.url }}"
          query:
            after: "{{ loop.pages.previous.fetch.body.nextCursor if loop.pages.previous else -1 }}"
            limit: 3
output: "{{ steps.pages.output.results | map(attribute='fetch.body.rows') | list }}"
"""


async def test_an_until_loop_pages_by_cursor_and_collects_every_row_once(
    run_yaml: RunYaml, base: str, request: pytest.FixtureRequest
) -> None:
    """The server adds a row in front once the first page is out: paging by offset would
    read a row twice; each page asks for the rows after the last one seen, read from the
    iteration before (loop.<id>.previous)."""
    doc = await run_yaml(CURSOR_PAGING, {"url": f"{base}/pages/{request.node.name}"})
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert [[row["id"] for row in page] for page in doc["output"]] == [
        [10, 20, 30],
        [40, 50, 60],
        [70],
    ]
    asked = [s["inputData"]["query"]["after"] for s in _body_runs(doc, "fetch")]
    assert asked == [-1, 30, 60]


async def test_max_iterations_fails_the_loop_and_a_retry_runs_as_many_more(
    engine: Engine,
) -> None:
    text = yaml(
        """
        name: bounded
        variables: {n: 0}
        steps:
          - id: poll
            type: sys.loop
            input: {until: "{{ variables.n >= 5 }}", max_iterations: 3}
            steps:
              - {id: bump, type: sys.set_variable, input: {name: n, op: increment}}
        output: "{{ steps.poll.output.count }}"
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == (
        "until was still false after 3 iterations (max_iterations: 3); a retry runs up to "
        "as many more"
    )
    assert doc["variables"] == {"n": 3}
    assert await engine.retry(doc["id"]) == ["poll"]
    done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed", done["error"]
    # The three finished iterations were kept; until, false on the third, asked for two more.
    assert done["output"] == 5 and done["variables"] == {"n": 5}
    assert [s["loop"]["poll"] for s in _body_runs(done, "bump")] == [0, 1, 2, 3, 4]
    results = latest(done, "poll")["outputData"]["results"]
    assert [r["bump"]["value"] for r in results] == [1, 2, 3, 4, 5]


async def test_a_retry_of_an_until_loop_resumes_the_failed_iteration(
    engine: Engine, recorder: Recorder
) -> None:
    text = yaml(
        """
        name: resumed
        steps:
          - id: poll
            type: sys.loop
            input: {until: "{{ loop.poll.index == 2 }}", max_iterations: 3}
            steps:
              - id: work
                type: test.flaky
                retry: {max_attempts: 1}
                input:
                  name: "w{{ loop.poll.index }}"
                  fail_times: "{{ 1 if loop.poll.index == 1 else 0 }}"
        output: "{{ steps.poll.output.count }}"
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert "iteration 1 failed at step 'work'" in doc["error"]["message"]
    await engine.retry(doc["id"])
    done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == 3
    assert recorder.calls == {"w0": 1, "w1": 2, "w2": 1}


async def test_an_until_that_fails_to_render_fails_the_loop_and_names_until(
    run_yaml: RunYaml,
) -> None:
    doc = await run_yaml(
        """
        name: broken_until
        steps:
          - id: poll
            type: sys.loop
            input: {until: "{{ steps.ask.output.body.done }}", max_iterations: 3}
            steps:
              - {id: ask, type: sys.transform, input: {value: {body: "{{ {} }}"}}}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    message = doc["error"]["message"]
    assert message.startswith("until, after iteration 0: steps.ask.output.body.done"), message
    assert latest(doc, "poll")["status"] == "Failed"
    assert len(_body_runs(doc, "ask")) == 1


async def test_previous_holds_the_iteration_before_in_a_sequential_items_loop(
    run_yaml: RunYaml,
) -> None:
    doc = await run_yaml(
        """
        name: running_total
        steps:
          - id: each
            type: sys.loop
            input: {items: [1, 2, 3, 4]}
            steps:
              - id: total
                type: sys.transform
                input: {value: "{{ loop.each.item + (loop.each.previous.total if loop.each.previous else 0) }}"}
          - id: wide
            type: sys.loop
            # A read: a constant concurrency is checked by validate, which refuses this.
            input: {items: [1, 2], concurrency: "{{ steps.each.output.count - 2 }}"}
            steps:
              - {id: seen, type: sys.transform, input: {value: "{{ loop.wide.previous }}"}}
        output: "{{ [steps.each.output.results | map(attribute='total') | list, steps.wide.output.results | map(attribute='seen') | list] }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    # Side by side, no iteration comes before another: previous is null in each.
    assert doc["output"] == [[1, 3, 6, 10], [None, None]]


async def test_cancel_stops_an_until_loop_and_starts_no_other_iteration(engine: Engine) -> None:
    text = yaml(
        """
        name: cancelled_poll
        steps:
          - id: poll
            type: sys.loop
            input: {until: "{{ false }}", max_iterations: 50}
            steps:
              - {id: nap, type: sys.delay, input: {duration: "{{ '30s' if loop.poll.index == 1 else '1ms' }}"}}
        """
    )
    execution_id = await engine.start(engine.load_text(text), hold=True)
    task = asyncio.create_task(engine.drive(execution_id))
    await wait_until(
        engine,
        execution_id,
        lambda d: any(
            s["loop"] == {"poll": 1} and s["status"] == "InProgress" for s in d["steps"].values()
        ),
    )
    await engine.cancel(execution_id, by="ops", reason="enough")
    doc = await asyncio.wait_for(task, 10)
    assert doc["runtimeStatus"] == "Cancelled"
    assert latest(doc, "poll")["status"] == "Cancelled"
    assert [(s["loop"]["poll"], s["status"]) for s in _body_runs(doc, "nap")] == [
        (0, "Completed"),
        (1, "Cancelled"),
    ]


# -- recovery ---------------------------------------------------------------------------------

OWNER = "until-test-process"


async def _stop(task: asyncio.Task[Any]) -> None:
    """What a crash looks like to the database: the process just stops writing."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _until_doc(
    engine: Engine, execution_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    return await wait_until(engine, execution_id, check, seconds=10)


RECOVERED = """
name: recovered_poll
variables: {runs: 0, stop: false}
steps:
  - id: poll
    type: sys.loop
    input: {until: "{{ variables.stop or loop.poll.index == 4 }}", max_iterations: 5}
    steps:
      - {id: count, type: sys.set_variable, input: {name: runs, op: increment}}
      - id: work
        type: test.slow
        input:
          name: "w{{ loop.poll.index }}"
          seconds: "{{ 0.4 if loop.poll.index == 1 else 0.01 }}"
          block_first: "{{ loop.poll.index == 2 }}"
output: "{{ steps.poll.output.results | map(attribute='count.value') | list }}"
"""


async def test_an_until_loop_killed_mid_iteration_resumes_it_and_runs_none_twice(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        execution_id = await engine.start(engine.load_text(yaml(RECOVERED)))
        task = asyncio.create_task(engine.drive(execution_id))
        await _until_doc(  # its handler was called (and blocks): the "process" dies there
            engine,
            execution_id,
            lambda d: (
                recorder.calls["w2"] >= 1
                and any(
                    s["loop"] == {"poll": 2} and s["status"] == "InProgress"
                    for s in d["steps"].values()
                )
            ),
        )
        await _stop(task)
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == [1, 2, 3, 4, 5]  # each iteration's increment recorded once
    assert doc["variables"]["runs"] == 5
    work = [(s["loop"]["poll"], s["attempt"], s["status"]) for s in _body_runs(doc, "work")]
    assert work == [
        (0, 1, "Completed"),
        (1, 1, "Completed"),
        (2, 1, "Failed"),
        (2, 2, "Completed"),
        (3, 1, "Completed"),
        (4, 1, "Completed"),
    ]
    assert [s["error"]["message"] for s in _body_runs(doc, "work") if s["error"]] == [CRASH_MESSAGE]
    assert recorder.calls == {"w0": 1, "w1": 1, "w2": 2, "w3": 1, "w4": 1}


async def _stopped_between_iterations(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> str:
    """A drain (SIGTERM, an engine closed) lets the running step finish and records the
    end of its iteration, but starts nothing more: the rows show iteration 1 ended and
    no iteration 2."""
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        # Iteration 1's last step runs 0.4 s: the engine is closed while it does.
        text = RECOVERED.replace('block_first: "{{ loop.poll.index == 2 }}"', "")
        execution_id = await engine.start(engine.load_text(yaml(text)))
        task = asyncio.create_task(engine.drive(execution_id))
        await _until_doc(engine, execution_id, lambda d: recorder.calls["w1"] >= 1)
    with pytest.raises(EngineClosedError):
        await task
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        between = await engine.get_execution(execution_id)
    assert between["runtimeStatus"] == "InProgress"
    iterations = {s["loop"]["poll"] for s in between["steps"].values() if s["loop"]}
    assert iterations == {0, 1}
    assert all(s["status"] == "Completed" for s in between["steps"].values() if s["loop"])
    return execution_id


async def test_an_until_loop_stopped_between_iterations_goes_on_with_the_next_once(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    execution_id = await _stopped_between_iterations(db_url, registry, recorder)
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == [1, 2, 3, 4, 5]
    assert [(s["loop"]["poll"], s["attempt"]) for s in _body_runs(doc, "work")][:3] == [
        (0, 1),
        (1, 1),
        (2, 1),  # one attempt: none was cut, none run twice
    ]
    assert recorder.calls["w1"] == 1 and recorder.calls["w3"] == 1


async def test_an_until_loop_stopped_between_iterations_judges_the_last_one_again(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    """The next process renders until on the ended iteration's stored outputs and the
    store as it is then (here a variable another branch could have set meanwhile), not
    taking the judgement the stopped process made."""
    execution_id = await _stopped_between_iterations(db_url, registry, recorder)
    sql = "UPDATE executions SET variables = :variables WHERE id = :id"
    assert run_sql(db_url, sql, variables='{"runs": 2, "stop": true}', id=execution_id) == 1
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == [1, 2]
    assert recorder.calls == {"w0": 1, "w1": 1}

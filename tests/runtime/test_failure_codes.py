"""The code a deliberate or a nested failure carries: ``sys.fail``'s own ``code``, and a
loop that fails because an iteration did, which carries the failing body step's code
(a 503 of a real local server is ``http.5xx``), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flowledger import Engine
from tests.conftest import RunYaml
from tests.runtime.support import latest
from tests.steps.http_server import serve


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve() as url:
        yield url


async def _failed_events(engine: Engine, execution_id: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in await engine.events(execution_id) if e["kind"] == "step.failed"]


async def test_sys_fail_gives_its_code_to_the_step_the_event_and_the_execution(
    engine: Engine, run_yaml: RunYaml
) -> None:
    doc = await run_yaml(
        """
        name: refuse
        steps:
          - {id: stop, type: sys.fail, input: {message: "no stock", code: OutOfStock}}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    assert latest(doc, "stop")["error"]["code"] == "OutOfStock"
    assert doc["error"]["code"] == "OutOfStock"
    assert doc["error"]["message"] == "no stock"
    assert [e["code"] for e in await _failed_events(engine, doc["id"])] == ["OutOfStock"]


async def test_a_later_condition_catches_sys_fail_by_its_rendered_code(
    run_yaml: RunYaml,
) -> None:
    doc = await run_yaml(
        """
        name: catch_fail
        input_schema:
          type: object
          properties: {kind: {type: string}}
        steps:
          - id: check
            type: sys.fail
            continue_on_error: true
            input: {message: refused, code: "stock.{{ input.kind }}"}
          - id: caught
            type: sys.condition
            input: {expression: "{{ steps.check.error.code == 'stock.empty' }}"}
        output: "{{ steps.caught.output.result }}"
        """,
        {"kind": "empty"},
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] is True


async def test_a_rendered_code_that_is_no_code_fails_the_step_as_input(
    run_yaml: RunYaml,
) -> None:
    doc = await run_yaml(
        """
        name: bad_code
        steps:
          - {id: stop, type: sys.fail, input: {code: "{{ input.c }}"}}
        """,
        {"c": "9 lives"},
    )
    error = latest(doc, "stop")["error"]
    assert error["code"] == "input"
    assert '"9 lives" is not an error code' in error["message"]


async def test_a_failed_iteration_gives_the_loop_the_body_step_s_http_code(
    engine: Engine, run_yaml: RunYaml, base: str
) -> None:
    doc = await run_yaml(
        f"""
        name: loop_http
        steps:
          - id: each
            type: sys.loop
            continue_on_error: true
            input: {{items: [200, 503], concurrency: 1}}
            steps:
              - id: call
                type: sys.http_request
                input: {{url: "{base}/status/{{{{ loop.each.item }}}}"}}
          - id: busy
            type: sys.condition
            input: {{expression: "{{{{ steps.each.error.code == 'http.5xx' }}}}"}}
        output: "{{{{ steps.busy.output.result }}}}"
        """
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    loop = latest(doc, "each")
    assert loop["error"]["code"] == "http.5xx"
    assert "iteration 1 failed at step 'call'" in loop["error"]["message"]
    assert doc["output"] is True
    codes = [e["code"] for e in await _failed_events(engine, doc["id"])]
    assert codes == ["http.5xx", "http.5xx"]  # the body step's, then the loop's


async def test_a_nested_loop_passes_the_code_up_to_the_execution(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: nested
        steps:
          - id: outer
            type: sys.loop
            input: {items: [1]}
            steps:
              - id: inner
                type: sys.loop
                input: {items: [1]}
                steps:
                  - {id: stop, type: sys.fail, input: {code: Deep.reason}}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    assert latest(doc, "outer")["error"]["code"] == "Deep.reason"
    assert doc["error"]["code"] == "Deep.reason"

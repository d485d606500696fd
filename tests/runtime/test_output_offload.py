"""Outputs over the size budget live in artifact files; templates read them back lazily."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.artifacts.service import REFERENCE_KEY
from flowledger.codec import Codec
from tests.runtime.steps_for_tests import Recorder

BUDGET = 1024
OWNER = "offload-test"

BIG_THEN_READ = """
name: big-output
steps:
  - id: big
    type: sys.transform
    input: {value: {text: "{{ 'x' * 3000 }}", n: 3, items: [1, 2, 3]}}
  - id: read
    type: sys.transform
    input:
      value:
        n: "{{ steps.big.output.n }}"
        length: "{{ steps.big.output.text | length }}"
        alias: "{{ __steps__.big.outputData.items[2] }}"
        status: "{{ steps.big.status }}"
        keys: "{{ steps.big.output.keys() | sort }}"
"""

LOOP = """
name: big-loop
steps:
  - id: each
    type: sys.loop
    input: {items: [1, 2, 3]}
    steps:
      - id: body
        type: sys.transform
        input: {value: {i: "{{ loop.each.item }}", pad: "{{ 'y' * 2000 }}"}}
      - id: inside
        type: sys.transform
        input: {value: "{{ steps.body.output.i * 10 }}"}
  - id: one
    type: sys.transform
    input: {value: "{{ steps.each.output.results[1].body.i }}"}
  - id: column
    type: sys.transform
    input: {value: "{{ steps.each.output.results | map(attribute='inside') | list }}"}
  - id: whole
    type: sys.transform
    input: {value: "{{ steps.each.output.results }}"}
"""


@pytest.fixture(autouse=True)
def artifacts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "artifacts"
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS", str(root))
    monkeypatch.setenv("FLOWLEDGER_OUTPUT_BUDGET", str(BUDGET))
    return root


def outputs(doc: dict[str, Any], step_id: str) -> list[Any]:
    steps = [s for s in doc["steps"].values() if s["stepId"] == step_id]
    return [s["outputData"] for s in sorted(steps, key=lambda s: list(s["loop"].values()))]


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {REFERENCE_KEY}


async def run(engine: Engine, text: str) -> dict[str, Any]:
    doc = await engine.run(engine.load_text(textwrap.dedent(text)), {})
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    return doc


async def test_a_large_output_is_kept_as_an_artifact_and_read_back_by_templates(
    engine: Engine, artifacts_root: Path
) -> None:
    assert engine.artifacts.budget == BUDGET
    doc = await run(engine, BIG_THEN_READ)
    [reference] = outputs(doc, "big")
    assert is_reference(reference)  # the document (and API) show the small reference
    [listed] = await engine.artifacts.for_execution(doc["id"])
    assert reference[REFERENCE_KEY] == {
        key: listed[key] for key in ("id", "executionId", "name", "contentType", "size", "sha256")
    }
    assert (listed["kind"], listed["contentType"], listed["name"]) == (
        "output",
        "application/json",
        "big.output.json",
    )
    stored = json.loads((artifacts_root / doc["id"] / listed["id"]).read_bytes())
    assert stored == {"text": "x" * 3000, "n": 3, "items": [1, 2, 3]}
    assert outputs(doc, "read") == [
        {"n": 3, "length": 3000, "alias": 3, "status": "Completed", "keys": ["items", "n", "text"]}
    ]
    # Neither the step rows nor the event history carry the large value.
    rows = await engine.store.get_step_executions(doc["id"])
    assert max(len(r["output"] or "") for r in rows) < BUDGET
    events = await engine.store.get_events(doc["id"])
    assert max(len(e["detail"] or "") for e in events) < BUDGET


async def test_outputs_within_the_budget_stay_inline(engine: Engine) -> None:
    doc = await run(
        engine,
        """
        name: small
        steps:
          - {id: small, type: sys.transform, input: {value: {text: "{{ 'x' * 500 }}"}}}
          - {id: text, type: sys.transform, input: {value: "{{ 'y' * 1000 }}"}}
        """,
    )
    assert outputs(doc, "small") == [{"text": "x" * 500}]
    assert outputs(doc, "text") == ["y" * 1000]
    assert await engine.artifacts.for_execution(doc["id"]) == []


async def test_a_template_that_keeps_a_whole_offloaded_output_gets_the_value(
    engine: Engine,
) -> None:
    doc = await run(
        engine,
        """
        name: copy
        steps:
          - {id: big, type: sys.transform, input: {value: ["{{ 'x' * 2000 }}", 7]}}
          - {id: last, type: sys.transform, input: {value: "{{ steps.big.output | last }}"}}
          - {id: text, type: sys.transform, input: {value: "[{{ steps.big.output[1] }}]"}}
          - {id: pick, type: sys.transform, input: {value: {all: "{{ steps.big }}"}}}
        """,
    )
    assert outputs(doc, "last") == [7]
    assert outputs(doc, "text") == ["[7]"]
    [pick] = outputs(doc, "pick")  # itself over the budget: read it the way templates do
    assert is_reference(pick)
    [_, listed] = await engine.artifacts.for_execution(doc["id"])
    assert listed["stepId"] == "pick"
    stored = json.loads(engine.artifacts.path_of(doc["id"], listed["id"]).read_bytes())
    assert stored["all"]["output"] == ["x" * 2000, 7]
    assert stored["all"]["outputData"] == ["x" * 2000, 7]


async def test_offloaded_outputs_inside_loop_results_resolve_when_touched(
    engine: Engine,
) -> None:
    doc = await run(engine, LOOP)
    assert all(is_reference(o) for o in outputs(doc, "body"))
    assert outputs(doc, "inside") == [10, 20, 30]  # inside an iteration: steps.body
    assert outputs(doc, "one") == [2]
    assert outputs(doc, "column") == [[10, 20, 30]]
    [whole] = outputs(doc, "whole")  # over the budget again: compare the stored file
    listed = await engine.artifacts.for_execution(doc["id"])
    [stored] = [a for a in listed if a["stepId"] == "whole"]
    results = json.loads(engine.artifacts.path_of(doc["id"], stored["id"]).read_bytes())
    assert results == [{"body": {"i": i, "pad": "y" * 2000}, "inside": i * 10} for i in (1, 2, 3)]
    assert is_reference(whole)


async def test_a_write_that_fails_keeps_the_output_inline(engine: Engine, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    engine.artifacts.root = blocker
    doc = await run(engine, BIG_THEN_READ)
    assert outputs(doc, "big")[0]["text"] == "x" * 3000
    assert outputs(doc, "read")[0]["length"] == 3000


# -- restarts ---------------------------------------------------------------------------------


async def _until(
    engine: Engine, execution_id: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    for _ in range(500):
        if check(await engine.get_execution(execution_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the execution never reached the expected state")


async def _interrupt(db_url: str, registry: StepRegistry, recorder: Recorder, text: str) -> str:
    """Run until the blocking step is running, then stop the process cold."""

    def blocked(doc: dict[str, Any]) -> bool:
        # Its handler was called (it blocks there), not only its start committed: else the
        # rerun's call would be the first, and block for good.
        return recorder.calls["block"] >= 1 and any(
            s["stepId"] == "block" for s in doc["steps"].values()
        )

    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        execution_id = await engine.start(engine.load_text(textwrap.dedent(text)))
        task = asyncio.create_task(engine.drive(execution_id))
        await _until(engine, execution_id, blocked)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return execution_id


RESTART = """
name: big-then-restart
steps:
  - id: big
    type: sys.transform
    input: {value: {text: "{{ 'x' * 3000 }}", n: 3}}
  - {id: block, type: test.slow, input: {name: block, block_first: true}}
  - id: read
    type: sys.transform
    input: {value: "{{ steps.big.output.n }}:{{ steps.big.output.text | length }}"}
"""


async def test_a_resumed_execution_reads_an_output_offloaded_before_the_restart(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    execution_id = await _interrupt(db_url, registry, recorder, RESTART)
    # A new engine, as after a restart: nothing loaded in memory.
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert recorder.calls["block"] == 2
    assert outputs(doc, "read") == ["3:3000"]
    assert is_reference(outputs(doc, "big")[0])


async def test_loop_results_load_only_the_iteration_a_template_touches(
    db_url: str, registry: StepRegistry, recorder: Recorder, artifacts_root: Path
) -> None:
    text = """
    name: loop-then-restart
    steps:
      - id: each
        type: sys.loop
        input: {items: [1, 2, 3]}
        steps:
          - id: body
            type: sys.transform
            input: {value: {i: "{{ loop.each.item }}", pad: "{{ 'y' * 2000 }}"}}
      - {id: block, type: test.slow, input: {name: block, block_first: true}}
      - {id: one, type: sys.transform, input: {value: "{{ steps.each.output.results[1].body.i }}"}}
    """
    execution_id = await _interrupt(db_url, registry, recorder, text)
    # Only iteration 1's file is left: touching results[1] must not load the others.
    for path in (artifacts_root / execution_id).iterdir():
        if json.loads(path.read_bytes())["i"] != 2:
            path.unlink()
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert outputs(doc, "one") == [2]


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("delete", "the output of step 'big' was stored as artifact"),
        ("overwrite", "does not match its recorded sha256"),
    ],
)
async def test_a_missing_or_damaged_file_fails_the_reading_step_clearly(
    db_url: str,
    registry: StepRegistry,
    recorder: Recorder,
    artifacts_root: Path,
    damage: str,
    needle: str,
) -> None:
    execution_id = await _interrupt(db_url, registry, recorder, RESTART)
    for path in (artifacts_root / execution_id).iterdir():
        if damage == "delete":
            path.unlink()
        else:
            path.write_text('{"n": 4, "text": ""}')
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Failed"
    message = doc["error"]["message"]
    assert needle in message and str(artifacts_root) in message
    if damage == "delete":
        assert "FLOWLEDGER_ARTIFACTS" in message


async def test_a_bare_read_of_a_missing_file_fails_the_step_too(
    db_url: str, registry: StepRegistry, recorder: Recorder, artifacts_root: Path
) -> None:
    """``{{ steps.big.output.n }}`` is read without Jinja (templates.bare): the missing
    file's error escaped the step there, and the execution stayed InProgress while
    every worker took it again at once."""
    bare = RESTART.replace(
        '"{{ steps.big.output.n }}:{{ steps.big.output.text | length }}"',
        '"{{ steps.big.output.n }}"',
    )
    execution_id = await _interrupt(db_url, registry, recorder, bare)
    for path in (artifacts_root / execution_id).iterdir():
        path.unlink()
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Failed"
    assert "its file is not in" in doc["error"]["message"]


async def test_secrets_the_execution_read_are_redacted_in_the_file(engine: Engine) -> None:
    codec = Codec()
    codec.add_secrets(["hunter2"])
    execution_id = await engine.start(
        engine.load_text("name: s\nsteps: [{id: a, type: sys.no_action}]")
    )
    output = {"token": "hunter2", "pad": "x" * 2000}
    reference, _ = engine.artifacts.offload(execution_id, "se-1", "leak", output, codec)
    assert is_reference(reference)
    path = engine.artifacts.path_of(execution_id, reference[REFERENCE_KEY]["id"])
    assert json.loads(path.read_bytes())["token"] == "***"

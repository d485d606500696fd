"""Data shaped like an offloaded output's reference (``{"$artifact": {...}}``) that a caller,
a person or a webhook sender supplies is data: a template reading it gets that dict back,
never the file it names (security tour 20 F1: a webhook body naming a FIFO froze the
server, one naming /dev/zero grew it until killed, one naming a file outside the
artifacts root with its sha256 was loaded as a step's output)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.app import App, PushWorkflows, WorkflowText
from flowledger.app.hooks import ReceiveHook
from flowledger.artifacts.service import REFERENCE_KEY
from tests.artifacts.traps import fifo_trap, forged, outside_file
from tests.raw_sql import run_sql
from tests.runtime.support import latest

BUDGET = 1024

PASS_WHOLE = """
name: pass-whole
steps:
  - {id: t, type: sys.transform, input: {value: "{{ input }}"}}
  - id: u
    type: sys.transform
    input:
      value:
        whole: "{{ steps.t.output }}"
        named: "{{ steps.t.output['$artifact'].id }}"
        hello: "{{ steps.t.output.hello | default('none') }}"
"""

PASS_FIELD = """
name: pass-field
steps:
  - {id: t, type: sys.transform, input: {value: "{{ input.x }}"}}
  - {id: u, type: sys.transform, input: {value: {got: "{{ steps.t.output }}"}}}
"""


@pytest.fixture(autouse=True)
def artifacts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "artifacts"
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS", str(root))
    monkeypatch.setenv("FLOWLEDGER_OUTPUT_BUDGET", str(BUDGET))
    return root


async def run(engine: Engine, text: str, input: dict[str, Any]) -> dict[str, Any]:
    doc = await engine.run(engine.load_text(textwrap.dedent(text)), input)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    return doc


def outside(tmp_path: Path) -> tuple[dict[str, Any], bytes]:
    """A reference to a file outside the root, size and sha256 right: the F1 read."""
    (tmp_path / "elsewhere").mkdir()
    path, data = outside_file(tmp_path / "elsewhere")
    return forged(str(path.parent), path.name, data), data


async def test_a_forged_reference_passed_through_whole_is_the_callers_dict(
    engine: Engine, tmp_path: Path, artifacts_root: Path
) -> None:
    reference, _ = outside(tmp_path)
    doc = await run(engine, PASS_WHOLE, reference)
    [u] = [s["outputData"] for s in doc["steps"].values() if s["stepId"] == "u"]
    assert u == {"whole": reference, "named": "target.json", "hello": "none"}
    # The engine kept the caller's dict as an artifact of its own: what t's row holds is
    # the engine's reference, to a file under the root that holds the caller's dict.
    stored = latest(doc, "t")["outputData"][REFERENCE_KEY]
    assert stored != reference[REFERENCE_KEY]
    [listed] = await engine.artifacts.for_execution(doc["id"])
    assert (listed["id"], listed["kind"], listed["stepId"]) == (stored["id"], "output", "t")
    assert json.loads((artifacts_root / doc["id"] / listed["id"]).read_bytes()) == reference


async def test_a_forged_reference_in_a_field_of_the_input_is_data_too(
    engine: Engine, tmp_path: Path
) -> None:
    reference, _ = outside(tmp_path)
    doc = await run(engine, PASS_FIELD, {"x": reference})
    assert latest(doc, "u")["outputData"] == {"got": reference}


async def test_a_forged_reference_inside_a_loop_iteration_is_data(
    engine: Engine, tmp_path: Path
) -> None:
    reference, _ = outside(tmp_path)
    text = """
    name: loop-forged
    steps:
      - id: each
        type: sys.loop
        input: {items: "{{ input.items }}"}
        steps:
          - {id: body, type: sys.transform, input: {value: "{{ loop.each.item }}"}}
      - id: one
        type: sys.transform
        input: {value: {got: "{{ steps.each.output.results[0].body }}"}}
    """
    doc = await run(engine, text, {"items": [reference]})
    assert latest(doc, "one")["outputData"] == {"got": reference}


async def test_an_answer_naming_a_fifo_is_data_and_the_fifo_is_never_opened(
    engine: Engine, tmp_path: Path
) -> None:
    text = """
    name: answer-forged
    steps:
      - {id: ask, type: sys.wait_for_input, input: {prompt: "anything"}}
      - {id: u, type: sys.transform, input: {value: {got: "{{ steps.ask.output }}"}}}
    """
    with fifo_trap(tmp_path / "fifo") as trap:
        answer = forged(str(tmp_path), "fifo", b"{}")
        doc = await engine.run(engine.load_text(textwrap.dedent(text)), {})
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        await engine.submit_input(doc["id"], "ask", answer)
        done = await engine.settle(doc["id"])
    assert not trap.opened, "the engine opened the FIFO an answer named"
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert latest(done, "u")["outputData"] == {"got": answer}


HOOK = """\
name: hookstore
triggers:
  - {type: webhook, path: store, auth: none}
steps:
  - {id: t, type: sys.transform, input: {value: "{{ input }}"}}
  - {id: u, type: sys.transform, input: {value: "{{ steps.t.output.email | default('none') }}"}}
"""


async def test_an_unauthenticated_webhook_body_naming_a_fifo_is_data(
    db_url: str, tmp_path: Path
) -> None:
    with fifo_trap(tmp_path / "fifo") as trap:
        body = json.dumps(forged(str(tmp_path), "fifo", b"{}")).encode()
        async with App(db_url) as app:
            await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=HOOK, file="h.yaml")]))
            headers = {"Content-Type": "application/json"}
            receipt = await app.hooks.receive(ReceiveHook(path="store", headers=headers, body=body))
            done = await app.engine.drive(receipt["executionId"])
    assert not trap.opened, "the engine opened the FIFO a webhook body named"
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert latest(done, "u")["outputData"] == "none"


async def test_a_look_alike_that_cannot_be_written_fails_its_step_not_kept_inline(
    engine: Engine, tmp_path: Path
) -> None:
    reference, _ = outside(tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    engine.artifacts.root = blocker
    doc = await engine.run(engine.load_text(textwrap.dedent(PASS_WHOLE)), reference)
    assert doc["runtimeStatus"] == "Failed"
    message = latest(doc, "t")["error"]["message"]
    assert "shape of an artifact reference" in message and "cannot write artifact" in message
    assert latest(doc, "t")["outputData"] is None


async def test_a_forged_reference_stored_before_the_fix_opens_nothing(
    db_url: str, registry: StepRegistry, tmp_path: Path
) -> None:
    """A row written by an older flowledger may hold a forged reference: reading it is
    refused by what it names, before any file is looked at (a FIFO here; /dev/zero and
    paths outside the root in tests/artifacts/test_references.py)."""
    text = """
    name: legacy
    steps:
      - {id: t, type: sys.transform, input: {value: {a: 1}}}
      - {id: ask, type: sys.wait_for_input, input: {prompt: "go?"}}
      - {id: u, type: sys.transform, input: {value: {got: "{{ steps.t.output }}"}}}
    """
    with fifo_trap(tmp_path / "fifo") as trap:
        async with Engine(db_url, registry=registry) as engine:
            doc = await engine.run(engine.load_text(textwrap.dedent(text)), {})
        legacy = json.dumps(forged(str(tmp_path), "fifo", b"{}"))
        changed = run_sql(
            db_url,
            "UPDATE step_executions SET output = :out WHERE execution_id = :e AND step_id = 't'",
            out=legacy,
            e=doc["id"],
        )
        assert changed == 1
        async with Engine(db_url, registry=registry) as engine:  # nothing cached
            await engine.submit_input(doc["id"], "ask", {})
            done = await engine.settle(doc["id"])
    assert not trap.opened, "the engine opened the FIFO a stored reference named"
    assert done["runtimeStatus"] == "Failed"
    message = done["error"]["message"]
    assert "artifact reference flowledger did not make" in message
    assert str(tmp_path) not in message.replace(str(tmp_path / "artifacts"), "")

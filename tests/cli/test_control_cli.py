"""`flowledger executions input|cancel|retry|rerun` and `run`'s exit 3, as a user types them."""

from __future__ import annotations

import json
import re
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.e2e

FLAKY_PLUGIN = """
from pathlib import Path
from pydantic import BaseModel
from flowledger import StepContext, StepError, step_type


class Gate(BaseModel):
    path: str


@step_type("acme.gate")
async def gate(data: Gate, ctx: StepContext) -> dict:
    if not Path(data.path).exists():
        raise StepError(f"{data.path} is not there yet", retryable=False)
    return {"opened": ctx.attempt}
"""


def _show(cli: Cli, execution_id: str) -> dict:  # type: ignore[type-arg]
    result = cli("executions", "show", execution_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_run_stops_for_input_and_input_finishes_it(cli: Cli) -> None:
    result = cli("run", "examples/approval.yaml", "--input", '{"leads": 4}')
    assert result.returncode == 3, result.stderr
    assert "AwaitingUserInput" in result.stdout
    assert "Send follow-ups to 4 leads?" in result.stdout
    command = re.search(r"submit: flowledger executions input (\S+) approve --data", result.stdout)
    assert command, result.stdout
    execution_id = command.group(1)

    bad = cli("executions", "input", execution_id, "approve", "--data", '{"approved": "yes"}')
    assert bad.returncode == 2
    assert "data.approved: 'yes' is not of type 'boolean'" in bad.stderr
    assert "keeps waiting" in bad.stderr
    assert _show(cli, execution_id)["runtimeStatus"] == "AwaitingUserInput"

    good = cli("executions", "input", execution_id[:8], "approve", "--data", '{"approved": true}')
    assert good.returncode == 0, good.stderr
    # What ran here is shown as it ran, as `run` shows it (only the summary was).
    assert re.search(r"step\.completed\s+send \(attempt 1\)", good.stdout), good.stdout
    doc = _show(cli, execution_id)
    assert doc["runtimeStatus"] == "Completed"
    sent = [s for s in doc["steps"].values() if s["stepId"] == "send"]
    assert sent[0]["outputData"] == "sending 4 follow-ups"
    events = json.loads(cli("executions", "show", execution_id, "--json").stdout)
    assert events["pendingInputs"] == []


def test_an_id_with_an_undecodable_byte_is_not_found(cli: Cli) -> None:
    """`executions show $'\\xff'`: Python reads the byte as a lone surrogate (\\udcff),
    which was refused as "prefix: Input should be a valid string, unable to parse raw
    data as a unicode string" (exit 2); it names no execution, as any other bad id."""
    assert cli("run", "examples/hello.yaml", "--input", '{"name": "Ada"}').returncode == 0
    for verb in ("show", "events", "cancel", "retry"):
        result = cli("executions", verb, "\udcff")
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip() == "error: no execution has an id starting with '\\udcff'"


def test_cancel_a_queued_execution(cli: Cli, tmp_path: Path) -> None:
    started = cli("start", "examples/approval.yaml", "--input", '{"leads": 1}')
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.strip()
    result = cli("executions", "cancel", execution_id, "--reason", "not needed", USER="ada")
    assert result.returncode == 0, result.stderr
    # The reason, not an "error:" line for a cancel that did what was asked; said once
    # (tour 24: "reason: cancelled: withdrawn"), with who sent it, as the web says it.
    said = "not needed (by cli:ada)"
    assert f"reason: {said}\n" in result.stdout and "error:" not in result.stdout
    shown = cli("executions", "show", execution_id)
    assert f"reason:   {said}\n" in shown.stdout and "error:" not in shown.stdout
    doc = _show(cli, execution_id)
    assert doc["runtimeStatus"] == "Cancelled"
    assert doc["error"]["message"] == "cancelled: not needed"
    again = cli("executions", "cancel", execution_id)
    assert again.returncode == 1 and "already ended: Cancelled" in again.stderr


def test_a_cancel_reason_over_a_thousand_characters_is_refused(cli: Cli) -> None:
    """The limit is the application's (app.models.MAX_CANCEL_REASON): the CLI says it,
    exits 2 as for any invalid input, and records nothing."""
    started = cli("start", "examples/approval.yaml", "--input", '{"leads": 1}')
    execution_id = started.stdout.strip()
    refused = cli("executions", "cancel", execution_id, "--reason", "r" * 1_001)
    assert refused.returncode == 2, refused.stderr
    assert "reason: must have at most 1,000 characters, not 1,001" in refused.stderr
    doc = _show(cli, execution_id)
    assert doc["runtimeStatus"] == "NotStarted" and "pendingSignals" not in doc


def test_retry_and_rerun_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    plugin = tmp_path / "gate_steps.py"
    plugin.write_text(FLAKY_PLUGIN)
    marker = tmp_path / "open"
    definition = tmp_path / "gated.yaml"
    definition.write_text(
        textwrap.dedent(
            f"""
            name: gated
            steps:
              - id: prepare
                type: sys.transform
                input: {{value: prepared}}
              - id: gate
                type: acme.gate
                input: {{path: "{marker}"}}
              - id: finish
                type: sys.transform
                input: {{value: "{{{{ steps.prepare.output }}}} after {{{{ steps.gate.output.opened }}}}"}}
            output: "{{{{ steps.finish.output }}}}"
            """
        )
    )
    failed = cli("run", str(definition), "--plugin", str(plugin), "--json")
    assert failed.returncode == 1
    execution_id = json.loads(failed.stdout)["id"]
    marker.write_text("")
    retried = cli("executions", "retry", execution_id, "--plugin", str(plugin), "--json")
    assert retried.returncode == 0, retried.stderr
    doc = json.loads(retried.stdout)
    assert doc["runtimeStatus"] == "Completed" and doc["output"] == "prepared after 2"

    rerun = cli(
        "executions", "rerun", execution_id, "--from", "gate", "--plugin", str(plugin), "--json"
    )
    assert rerun.returncode == 0, rerun.stderr
    second = json.loads(rerun.stdout)
    assert second["rerunOf"] == execution_id and second["output"] == "prepared after 1"

    # Without --json, the steps that run here are shown as they run, a line an event.
    shown = cli("executions", "rerun", execution_id, "--from", "gate", "--plugin", str(plugin))
    assert shown.returncode == 0, shown.stderr
    lines = [line.split()[1:3] for line in shown.stdout.splitlines() if "step." in line]
    assert lines[-2:] == [["step.started", "finish"], ["step.completed", "finish"]], shown.stdout
    assert ["step.completed", "gate"] in lines and ["step.started", "prepare"] not in lines
    assert shown.stdout.count("rerun of") == 1, shown.stdout  # the summary's, not twice

    refused = cli("executions", "rerun", execution_id, "--from", "nope", "--plugin", str(plugin))
    assert refused.returncode == 1 and "has no step 'nope'" in refused.stderr
    bad_version = cli("executions", "rerun", execution_id, "--from", "gate", "--version", "v2")
    assert bad_version.returncode == 2 and "pinned or latest" in bad_version.stderr


def test_a_cancel_without_the_plugin_is_applied(cli: Cli, tmp_path: Path) -> None:
    """The workflow has a custom step: without --plugin, cancel failed with exit 2 and a
    definition error ("unknown step type"), later with exit 1 and "recorded": cancelling
    runs no step, so it needs no plugin."""
    plugin = tmp_path / "gate_steps.py"
    plugin.write_text(FLAKY_PLUGIN)
    (tmp_path / "open").write_text("")
    definition = tmp_path / "gated_ask.yaml"
    definition.write_text(
        "name: gated_ask\nsteps:\n"
        f"  - {{id: gate, type: acme.gate, input: {{path: '{tmp_path / 'open'}'}}}}\n"
        "  - {id: ask, type: sys.wait_for_input, input: {prompt: ok?}}\n"
    )
    waiting = cli("run", str(definition), "--plugin", str(plugin), "--json")
    assert waiting.returncode == 3, waiting.stderr
    execution_id = json.loads(waiting.stdout)["id"]
    without = cli("executions", "cancel", execution_id)
    assert without.returncode == 0, without.stderr
    assert "unknown step type" not in without.stderr
    assert _show(cli, execution_id)["runtimeStatus"] == "Cancelled"


def test_a_worker_resumes_an_execution_once_input_arrives(
    cli: Cli, tmp_path: Path, forked_command: str
) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import REPO

    db = f"sqlite:///{tmp_path / 'worker.db'}"
    started = cli("start", "examples/approval.yaml", "--input", '{"leads": 2}', "--db", db)
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.strip()
    env = {**os.environ, "FLOWLEDGER_DB": db}
    worker = subprocess.Popen(
        [forked_command, "worker"], cwd=REPO, env=env, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):  # the worker runs it up to the question, then parks it
            doc = json.loads(cli("executions", "show", execution_id, "--json", "--db", db).stdout)
            if doc["runtimeStatus"] == "AwaitingUserInput":
                break
            time.sleep(0.05)
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        answered = cli(
            "executions", "input", execution_id, "approve", "--data", '{"approved": true}',
            "--detach", "--db", db,
        )  # fmt: skip
        assert answered.returncode == 0, answered.stderr
        assert "recorded" in answered.stdout  # the worker goes on
        for _ in range(200):
            doc = json.loads(cli("executions", "show", execution_id, "--json", "--db", db).stdout)
            if doc["runtimeStatus"] == "Completed":
                break
            time.sleep(0.05)
        assert doc["runtimeStatus"] == "Completed"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def test_a_cancel_names_the_account_that_sent_it_without_a_user_variable(
    cli: Cli, tmp_path: Path
) -> None:
    """Without USER (a service, a container) it was recorded as cli:unknown."""
    import getpass

    started = cli("start", "examples/approval.yaml", "--input", '{"leads": 1}')
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.strip()
    cancelled = cli("executions", "cancel", execution_id, "--json", USER="", USERNAME="")
    assert cancelled.returncode == 0, cancelled.stderr
    listed = cli("executions", "events", execution_id, "--json").stdout
    events = [json.loads(line) for line in listed.splitlines()]
    [cancel] = [e for e in events if e["kind"] == "execution.cancelled"]
    assert f"cli:{getpass.getuser()}" in json.dumps(cancel)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_an_answer_given_where_the_plugins_are_not_is_recorded_for_a_worker(
    cli: Cli, tmp_path: Path, as_json: bool
) -> None:
    """The answer was recorded, but the command exited 3 and asked for it again (submit:
    flowledger executions input …); doing so was refused as answered already. With
    --json it still exited 3 after the text form was fixed."""
    plugin = tmp_path / "gate_steps.py"
    plugin.write_text(FLAKY_PLUGIN)
    (tmp_path / "open").write_text("")
    definition = tmp_path / "ask_then_gate.yaml"
    definition.write_text(
        textwrap.dedent(
            f"""
            name: ask-then-gate
            steps:
              - {{id: ask, type: sys.wait_for_input, input: {{prompt: go?}}}}
              - {{id: gate, type: acme.gate, input: {{path: "{tmp_path / "open"}"}}}}
            """
        )
    )
    waiting = cli("run", str(definition), "--plugin", str(plugin), "--json")
    assert waiting.returncode == 3, waiting.stderr
    execution_id = json.loads(waiting.stdout)["id"]
    json_flag = ["--json"] if as_json else []
    answered = cli("executions", "input", execution_id, "ask", "--data", '{"go": true}', *json_flag)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    if as_json:
        answer = json.loads(answered.stdout)
        assert answer["runtimeStatus"] == "AwaitingUserInput" and answer["pendingInputs"] == []
    else:
        assert "every answer is recorded" in answered.stdout, answered.stdout
        assert "submit:" not in answered.stdout
    assert _show(cli, execution_id)["pendingInputs"] == []
    again = cli("executions", "input", execution_id, "ask", "--data", '{"go": false}')
    assert again.returncode != 0 and "answered already" in again.stderr, again.stderr


def test_an_answer_to_a_child_names_the_parent_it_carries_on(cli: Cli, tmp_path: Path) -> None:
    """The child's lines came first, so they were taken for the command's own, and the
    parent's were labelled "child <parent id>"; then "execution <parent id>", which
    `run` never says (tour 24): the parent's are "parent <id>", as `run`'s are "child"."""
    kid = tmp_path / "kid.yaml"
    kid.write_text(
        "name: kid\nsteps:\n  - {id: ask, type: sys.wait_for_input, input: {prompt: ok?}}\n"
    )
    assert cli("workflows", "push", str(kid)).returncode == 0
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        "name: parent\nsteps:\n  - {id: kids, type: sys.sub_workflow, input: {workflow: kid}}\n"
    )
    waiting = cli("run", str(parent), "--json")
    assert waiting.returncode == 3, waiting.stderr
    parent_doc = json.loads(waiting.stdout)
    child_id = parent_doc["pendingInputs"][0]["executionId"]
    answered = cli("executions", "input", child_id, "ask", "--data", "true")
    assert answered.returncode == 0, answered.stderr
    lines = answered.stdout.splitlines()
    assert any(f"parent {parent_doc['id'][:8]} step.completed" in line for line in lines), lines
    assert not any("child " in line or "execution " in line for line in lines), lines


KID = """
name: kid
input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
output: {n: "{{ input.n }}"}
steps:
  - id: check
    type: sys.condition
    input: {expression: "{{ input.n != %d }}"}
    else: [boom]
  - {id: boom, type: sys.fail, input: {message: "n is {{ input.n }}"}}
"""
FAN_OUT = """
name: fan
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: kid, items: [1, 2, 3], concurrency: 1, input: {n: "{{ loop.kids.item }}"}}
"""


def test_retry_labels_children_as_run_does_and_says_what_it_retries_first(
    cli: Cli, tmp_path: Path
) -> None:
    """Tour 24: `executions retry` labelled children `execution 1a2b3c4d` where `run`
    says `child 1a2b3c4d`, and printed "retried kids" after all the events."""
    kid = tmp_path / "kid.yaml"
    kid.write_text(KID % 2)
    assert cli("workflows", "push", str(kid)).returncode == 0
    fan = tmp_path / "fan.yaml"
    fan.write_text(FAN_OUT)
    failed = cli("run", str(fan), "--json")
    assert failed.returncode == 1, failed.stderr
    kid.write_text(KID % 99)  # fixed: a new version of the child
    assert cli("workflows", "push", str(kid)).returncode == 0
    retried = cli("executions", "retry", json.loads(failed.stdout)["id"])
    assert retried.returncode == 0, retried.stderr
    lines = retried.stdout.splitlines()
    assert lines[0] == "retrying step kids", lines
    children = [line for line in lines if re.match(r"\S+ child [0-9a-f]{8} ", line)]
    assert len([line for line in children if "execution.completed" in line]) == 2, lines
    assert not any(re.match(r"\S+ execution [0-9a-f]{8} ", line) for line in lines), lines
    events = [line for line in lines if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line)]
    assert re.match(r"\S+ execution\.completed", events[-1]), lines  # its own end last


DUE = """
name: due-soon
steps:
  - id: approve
    type: sys.wait_for_input
    input:
      prompt: Approve?
      schema: {type: object, properties: {approved: {type: boolean}}, required: [approved]}
      due: 3s
      on_timeout: {default: {approved: false}}
"""


def test_a_due_input_says_what_applies_its_timeout(cli: Cli, tmp_path: Path) -> None:
    """Tour 24: `run` exits 3 at once, and past the due time `input` was refused ("its
    timeout applies") while nothing said that only a worker or serve applies it."""
    path = tmp_path / "due.yaml"
    path.write_text(DUE)
    waiting = cli("run", str(path))
    assert waiting.returncode == 3, waiting.stderr
    assert "submit: flowledger executions input" in waiting.stdout
    assert (
        "due: unanswered by then, its timeout applies (the on_timeout default, else the "
        "step fails) in a running `flowledger worker` or `flowledger serve`" in waiting.stdout
    )
    execution_id = re.search(r"id ([0-9a-f-]{36})", waiting.stdout)
    due = re.search(r", due (\S+Z)", waiting.stdout)
    assert execution_id is not None and due is not None
    left = datetime.fromisoformat(due.group(1).replace("Z", "+00:00")) - datetime.now(UTC)
    time.sleep(max(0.0, left.total_seconds()) + 0.2)  # past its due time, with no worker
    passed = "due: passed; it takes no answer now, and its timeout applies"
    for command in ("show", "watch"):
        shown = cli("executions", command, execution_id.group(1))
        assert shown.returncode == (0 if command == "show" else 3), shown.stderr
        assert passed in shown.stdout and "`flowledger worker`" in shown.stdout, shown.stdout
        assert "submit:" not in shown.stdout  # it would be refused
    late = cli("executions", "input", execution_id.group(1), "approve", "--data", "{}")
    assert late.returncode == 1 and "`flowledger worker`" in late.stderr, late.stderr

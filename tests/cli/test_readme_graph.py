"""The README's word on the graph is the engine's: its join-and-fallback example runs as it
says (a join waits for every predecessor; a step that failed with ``continue_on_error``
counts as done, and its error reads as ``steps.<id>.error``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.conftest import REPO
from tests.inprocess import run_in_process

README = REPO / "README.md"


def _words() -> str:
    """The README's text, its line breaks as spaces (a sentence may wrap anywhere)."""
    return " ".join(README.read_text(encoding="utf-8").split())


def test_the_join_and_fallback_example_runs_as_the_readme_says(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(
        r"A join and a\s+fallback, as a run shows them.*?```yaml\n(.*?)```", text, re.S
    )
    assert found, "the README's join-and-fallback example is gone"
    said = re.search(r"It completes with the output `(\{.*?\})`", text)
    assert said, "the README no longer says what the example gives"
    assert "join that waits for all of them (an AND; `join: first`, below, is the OR)" in _words()
    assert "A step without `after` runs after the step before it in its list" in _words()
    workflow = tmp_path / "join.yaml"
    workflow.write_text(found.group(1))
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'flow.db'}"}
    result = run_in_process(["run", str(workflow), "--json"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == json.loads(said.group(1))
    steps = {s["stepId"]: s for s in doc["steps"].values()}
    assert steps["call"]["status"] == "Failed"
    error = {"message": "no answer", "stepId": "call", "attempt": 1, "code": "step"}
    assert steps["call"]["error"] == error
    # The join waited for its slowest predecessor (ISO times of one zone sort in order).
    assert steps["join"]["startedAt"] >= steps["slow"]["completedAt"]
    assert steps["slow"]["completedAt"] > steps["fast"]["completedAt"]


def test_a_join_whose_predecessors_were_all_skipped_is_skipped(tmp_path: Path) -> None:
    """As the README says next to it: it runs if at least one predecessor completed."""
    workflow = tmp_path / "skips.yaml"
    workflow.write_text(
        "name: skips\n"
        "steps:\n"
        "  - {id: a, type: sys.transform, when: false, input: {value: 1}}\n"
        "  - {id: b, type: sys.transform, after: [], when: false, input: {value: 2}}\n"
        "  - {id: c, type: sys.transform, after: [], input: {value: 3}}\n"
        "  - {id: both_skipped, type: sys.transform, after: [a, b], input: {value: 4}}\n"
        "  - {id: one_ran, type: sys.transform, after: [a, c], input: {value: 5}}\n"
    )
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'flow.db'}"}
    result = run_in_process(["run", str(workflow), "--json"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    statuses = {s["stepId"]: s["status"] for s in json.loads(result.stdout)["steps"].values()}
    assert statuses["both_skipped"] == "Disabled" and statuses["one_ran"] == "Completed"
    assert "when all were skipped, it is `Disabled` too" in _words()


def test_the_stop_or_finish_example_withdraws_its_question_when_the_work_ends_first(
    tmp_path: Path,
) -> None:
    """The README's ``join: first`` example, its two hours made 200 ms: the work ends
    first, so the question is withdrawn and the output is "finished", as it says."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```yaml\n(name: stop-or-finish\n.*?)```", text, re.S)
    assert found, "the README's join: first example is gone"
    assert "otherwise the question is withdrawn (`answer` Cancelled" in _words()
    assert 'it is `"finished"`' in _words()
    workflow = tmp_path / "race.yaml"
    workflow.write_text(found.group(1).replace("duration: 2h", "duration: 200ms"))
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'flow.db'}"}
    result = run_in_process(["run", str(workflow), "--json"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == "finished"
    assert doc["pendingInputs"] == []
    statuses = {s["stepId"]: s["status"] for s in doc["steps"].values()}
    assert statuses == {"work": "Completed", "answer": "Cancelled", "decide": "Completed"}

"""A rerun owns the artifacts of the steps it reuses: pruning its original takes none of them
(runtime.rerun_artifacts)."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import textwrap
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type
from flowledger.app import App
from flowledger.app.models import (
    DownloadArtifacts,
    GetArtifact,
    GetExecution,
    ListArtifacts,
    PruneExecutions,
    RerunExecution,
)
from flowledger.artifacts.service import REFERENCE_KEY
from flowledger.config import Settings
from flowledger.errors import ConflictError
from flowledger.storage.base import ExecutionQuery

BUDGET = 1024
CSV = b"id,name\n1,Ada\n2,Grace\n"

#: Every place a reused step holds an artifact: an output over the budget, a saved file, a
#: loop output holding its body's references (inline, and itself over the budget so its
#: file holds them).
WORKFLOW = """
name: reuse
steps:
  - id: big
    type: sys.transform
    input: {value: "{{ 'z' * 3000 }}"}
  - id: report
    type: test.report
    input: {name: report.csv}
  - id: each
    type: sys.loop
    input: {items: [1, 2]}
    steps:
      - id: body
        type: sys.transform
        input: {value: "{{ 'q' * (2000 + loop.each.item) }}"}
  - id: wide
    type: sys.loop
    input: {items: [1, 2, 3, 4, 5, 6]}
    steps:
      - id: part
        type: sys.transform
        input: {value: "{{ 'w' * (2000 + loop.wide.item) }}"}
  - id: use
    type: sys.transform
    after: [big, report, each, wide]
    input:
      value:
        big: "{{ steps.big.output | length }}"
        report: "{{ steps.report.output.size }}"
        each: "{{ steps.each.output.results | map(attribute='body') | map('length') | list }}"
        wide: "{{ steps.wide.output.results | map(attribute='part') | map('length') | list }}"
"""
USED = {
    "big": 3000,
    "report": len(CSV),
    "each": [2001, 2002],
    "wide": [2001, 2002, 2003, 2004, 2005, 2006],
}


class ReportInput(BaseModel):
    name: str


@pytest.fixture
def registry(registry: StepRegistry) -> StepRegistry:
    @step_type("test.report")
    async def report(data: ReportInput, ctx: StepContext) -> dict[str, Any]:
        assert ctx.artifacts is not None
        return await ctx.artifacts.save(data.name, CSV, "text/csv")

    registry.register(report)
    return registry


@pytest.fixture
async def app(db_url: str, registry: StepRegistry, tmp_path: Path) -> AsyncIterator[App]:
    settings = dataclasses.replace(
        Settings.from_env(), output_budget=BUDGET, artifacts_dir=str(tmp_path / "files")
    )
    async with (
        Engine(db_url, registry=registry, settings=settings) as engine,
        App(engine=engine) as application,
    ):
        yield application


def step(doc: dict[str, Any], step_id: str) -> dict[str, Any]:
    [found] = [s for s in doc["steps"].values() if s["stepId"] == step_id]
    return found


def references(value: Any) -> list[dict[str, Any]]:
    """Every reference anywhere in a value (documents show them as they are stored)."""
    if isinstance(value, dict):
        if set(value) == {REFERENCE_KEY}:
            return [value[REFERENCE_KEY]]
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


async def rerun(app: App, execution_id: str, from_step: str = "use") -> dict[str, Any]:
    request = RerunExecution(id=execution_id, from_step=from_step, settle=True)
    doc = dict(await app.executions.rerun(request))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    return doc


async def test_a_rerun_keeps_working_after_its_original_is_pruned(app: App, tmp_path: Path) -> None:
    engine = app.engine
    first = await engine.run(engine.load_text(textwrap.dedent(WORKFLOW), "reuse.yaml"), {})
    assert first["runtimeStatus"] == "Completed", first["error"]
    assert step(first, "use")["outputData"] == USED
    originals = {a["id"]: a for a in await engine.artifacts.for_execution(first["id"])}
    assert len(originals) == 11  # big, report, 2 + 6 bodies, wide's own output

    engine.clock.offset += timedelta(minutes=10)  # the original ended 10 minutes ago
    again = await rerun(app, first["id"])
    assert step(again, "use")["outputData"] == USED

    # The rerun lists its own copies: same names, types, sizes and checksums, its ids.
    listed = [dict(a) for a in await app.artifacts.list(ListArtifacts(execution_id=again["id"]))]
    assert len(listed) == 11
    assert {a["executionId"] for a in listed} == {again["id"]}
    assert not {a["id"] for a in listed} & set(originals)

    def same(a: dict[str, Any]) -> tuple[Any, ...]:
        # wide's own file holds its bodies' references: rewritten to the copies, it differs.
        sha256 = "rewritten" if a["stepId"] == "wide" else a["sha256"]
        return (a["name"], a["contentType"], a["size"], sha256, a["kind"], a["stepId"])

    assert sorted(map(same, listed)) == sorted(map(same, originals.values()))
    rows = {s["id"]: s for s in again["steps"].values()}
    assert all(rows[a["stepExecutionId"]]["stepId"] == a["stepId"] for a in listed)
    # Every reference in its document names one of its own artifacts.
    ours = {a["id"]: a for a in listed}
    named = references([s["outputData"] for s in again["steps"].values()])
    assert len(named) >= 11  # the bodies' references are in their rows and their loop's
    for ref in named:
        assert ref["executionId"] == again["id"] and ref["id"] in ours
        assert (ref["size"], ref["sha256"]) == (ours[ref["id"]]["size"], ours[ref["id"]]["sha256"])
    # Hard links: the report's file is one file under two names, until the prune.
    root = tmp_path / "files"
    [csv] = [a for a in listed if a["name"] == "report.csv"]
    [old_csv] = [a for a in originals.values() if a["name"] == "report.csv"]
    assert os.path.samefile(root / again["id"] / csv["id"], root / first["id"] / old_csv["id"])

    pruned = dict(await app.retention.prune(PruneExecutions(older_than="5m")))
    assert (pruned["executions"], pruned["artifactFolders"]) == (1, 1)
    assert not (root / first["id"]).exists()

    # Its document, listing, reads and downloads still hold, and so does a rerun of it.
    shown = dict(await app.executions.get(GetExecution(id=again["id"])))
    assert shown["steps"] == again["steps"]
    after = [dict(a) for a in await app.artifacts.list(ListArtifacts(execution_id=again["id"]))]
    assert after == listed
    _, data = await app.artifacts.read(GetArtifact(id=csv["id"]))
    assert data == CSV
    folder = tmp_path / "download"
    downloaded = await app.artifacts.download(
        DownloadArtifacts(execution_id=again["id"], folder=str(folder))
    )
    assert len(downloaded) == 11
    assert (folder / "report.csv").read_bytes() == CSV
    assert json.loads((folder / "big.output.json").read_text()) == "z" * 3000
    for doc in downloaded:
        file = Path(str(doc["path"]))
        assert hashlib.sha256(file.read_bytes()).hexdigest() == doc["sha256"]

    third = await rerun(app, again["id"])
    assert step(third, "use")["outputData"] == USED
    assert len(await engine.artifacts.for_execution(third["id"])) == 11
    # Rerun from the loop: what comes before it (big, report) is copied, the loops run again.
    fourth = await rerun(app, again["id"], "each")
    assert step(fourth, "use")["outputData"] == USED


async def test_a_reused_file_that_is_gone_refuses_the_rerun_and_leaves_nothing(
    app: App, tmp_path: Path
) -> None:
    engine = app.engine
    first = await engine.run(engine.load_text(textwrap.dedent(WORKFLOW), "reuse.yaml"), {})
    [csv] = [
        a for a in await engine.artifacts.for_execution(first["id"]) if a["stepId"] == "report"
    ]
    root = tmp_path / "files"
    (root / first["id"] / csv["id"]).unlink()
    before = await engine.store.count_executions(ExecutionQuery())
    with pytest.raises(ConflictError) as caught:
        await engine.rerun(first["id"], "use")
    message = str(caught.value)
    assert "step 'report' runs before it" in message and "'report.csv'" in message
    assert "rerun from an earlier step" in message
    # No execution, and none of the files linked before the missing one was met.
    assert await engine.store.count_executions(ExecutionQuery()) == before
    assert sorted(p.name for p in root.iterdir()) == [first["id"]]
    # Rerunning from the step that saved it runs that step again.
    again = await rerun(app, first["id"], "report")
    assert step(again, "use")["outputData"] == USED


async def test_where_files_cannot_be_linked_they_are_copied_and_verified(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = app.engine
    first = await engine.run(engine.load_text(textwrap.dedent(WORKFLOW), "reuse.yaml"), {})

    def cross_device(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)  # as across two filesystems
    again = await rerun(app, first["id"])
    assert step(again, "use")["outputData"] == USED
    root = tmp_path / "files"
    copies = await engine.artifacts.for_execution(again["id"])
    assert len(copies) == 11
    for copy in copies:
        path = root / again["id"] / copy["id"]
        assert os.stat(path).st_nlink == 1
        assert hashlib.sha256(path.read_bytes()).hexdigest() == copy["sha256"]

    # A copy is verified: a damaged original is refused, and nothing is left.
    [big] = [a for a in await engine.artifacts.for_execution(first["id"]) if a["stepId"] == "big"]
    path = root / first["id"] / big["id"]
    path.write_bytes(path.read_bytes().replace(b"z", b"y"))  # same size, other content
    count = await engine.store.count_executions(ExecutionQuery())
    with pytest.raises(Exception, match="does not match its recorded sha256"):
        await engine.rerun(first["id"], "use")
    assert await engine.store.count_executions(ExecutionQuery()) == count
    assert sorted(p.name for p in root.iterdir()) == sorted([first["id"], again["id"]])


async def test_a_variable_set_to_a_value_over_the_budget_is_carried_into_the_rerun(
    app: App,
) -> None:
    """The reused sys.set_variable's output is a reference: the value is read from it."""
    text = """
    name: long
    variables: {long: ""}
    steps:
      - {id: keep, type: sys.set_variable, input: {name: long, value: "{{ 'v' * 3000 }}"}}
      - {id: use, type: sys.transform, after: [keep], input: {value: "{{ variables.long | length }}"}}
    """
    engine = app.engine
    first = await engine.run(engine.load_text(textwrap.dedent(text), "long.yaml"), {})
    assert REFERENCE_KEY in step(first, "keep")["outputData"]
    engine.clock.offset += timedelta(minutes=10)
    again = await rerun(app, first["id"])
    assert step(again, "use")["outputData"] == 3000
    assert again["variables"]["long"] == "v" * 3000
    await app.retention.prune(PruneExecutions(older_than="5m"))
    third = await rerun(app, again["id"])  # read from the rerun's own copy
    assert third["variables"]["long"] == "v" * 3000

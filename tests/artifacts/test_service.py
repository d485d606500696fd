"""Files steps save through ``ctx.artifacts``: stored, listed, downloaded, verified."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type
from flowledger.artifacts.service import default_artifacts_root, sanitize_name
from flowledger.config import Settings
from flowledger.errors import ArtifactDamagedError, StorageError

CSV = b"id,name\n1,Ada\n2,Grace\n"

REPORT = """
name: reports
steps:
  - id: report
    type: test.report
    input: {name: "{{ input.name }}"}
  - id: check
    type: sys.transform
    input: {value: "{{ steps.report.output.sha256 }}"}
"""


class ReportInput(BaseModel):
    name: str = "report.csv"


@pytest.fixture(autouse=True)
def artifacts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every engine's files in the test's folder (PostgreSQL's default is ./)."""
    root = tmp_path / "artifacts"
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS", str(root))
    return root


@pytest.fixture
def registry(registry: StepRegistry) -> StepRegistry:
    @step_type("test.report")
    async def report(data: ReportInput, ctx: StepContext) -> dict[str, Any]:
        assert ctx.artifacts is not None
        return await ctx.artifacts.save(data.name, CSV, "text/csv")

    registry.register(report)
    return registry


async def run(engine: Engine, text: str, **input: Any) -> dict[str, Any]:
    doc = await engine.run(engine.load_text(textwrap.dedent(text)), input)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    return doc


async def test_a_custom_step_saves_a_file_linked_to_its_execution_and_step(
    engine: Engine, artifacts_root: Path
) -> None:
    doc = await run(engine, REPORT, name="report.csv")
    [(step_execution_id, step)] = [
        (key, s) for key, s in doc["steps"].items() if s["stepId"] == "report"
    ]
    [listed] = await engine.artifacts.for_execution(doc["id"])
    assert step["outputData"] == listed  # the step's output is the description
    assert listed["executionId"] == doc["id"]
    assert listed["stepExecutionId"] == step_execution_id
    assert listed["stepId"] == "report"
    assert (listed["name"], listed["contentType"], listed["kind"]) == (
        "report.csv",
        "text/csv",
        "saved",
    )
    assert listed["size"] == len(CSV)
    assert listed["sha256"] == hashlib.sha256(CSV).hexdigest()
    # On disk under root/<execution>/<artifact id>, never under the user's name; no leftovers.
    path = artifacts_root / doc["id"] / listed["id"]
    assert path.read_bytes() == CSV
    assert sorted(p.name for p in path.parent.iterdir()) == [listed["id"]]
    # A later step's template reads the description like any output.
    check = next(s for s in doc["steps"].values() if s["stepId"] == "check")
    assert check["outputData"] == listed["sha256"]


async def test_hostile_names_never_leave_the_folder(engine: Engine, artifacts_root: Path) -> None:
    doc = await run(engine, REPORT, name="../../../etc/passwd")
    [listed] = await engine.artifacts.for_execution(doc["id"])
    assert listed["name"] == "passwd"
    assert [p.name for p in artifacts_root.iterdir()] == [doc["id"]]


def many_reports(count: int) -> str:
    """A loop whose every iteration saves a ``report.csv``."""
    return f"""
    name: many-reports
    steps:
      - id: each
        type: sys.loop
        input: {{items: {list(range(count))}}}
        steps:
          - {{id: report, type: test.report, input: {{name: report.csv}}}}
    """


async def test_download_copies_verifies_and_never_overwrites(
    engine: Engine, tmp_path: Path
) -> None:
    doc = await run(engine, many_reports(2))
    listed = await engine.artifacts.for_execution(doc["id"])
    target = tmp_path / "out" / "nested"
    paths = await engine.artifacts.download(doc["id"], target)
    # Same name twice: the second gets its artifact id's start, nothing is lost.
    assert [p.name for p in paths] == ["report.csv", f"report-{listed[1]['id'][:8]}.csv"]
    assert all(p.read_bytes() == CSV for p in paths)
    with pytest.raises(
        StorageError, match=r"will not overwrite .*report\.csv.*: they already exist"
    ):
        await engine.artifacts.download(doc["id"], target)
    assert all(p.read_bytes() == CSV for p in paths)


async def test_a_download_refused_half_way_writes_nothing(
    engine: Engine, artifacts_root: Path, tmp_path: Path
) -> None:
    doc = await run(engine, many_reports(3))
    listed = await engine.artifacts.for_execution(doc["id"])
    target = tmp_path / "out"
    target.mkdir()
    # A dangling symlink among the targets: exists() says no, writing through it would not.
    (target / f"report-{listed[2]['id'][:8]}.csv").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StorageError, match=r"will not overwrite .*: it already exists"):
        await engine.artifacts.download(doc["id"], target)
    assert sorted(p.name for p in target.iterdir()) == [f"report-{listed[2]['id'][:8]}.csv"]
    # A file damaged after the others were copied: none of them is kept either.
    (target / f"report-{listed[2]['id'][:8]}.csv").unlink()
    (artifacts_root / doc["id"] / listed[2]["id"]).write_bytes(b"tampered")
    with pytest.raises(ArtifactDamagedError, match="is damaged or was replaced"):
        await engine.artifacts.download(doc["id"], target)
    assert list(target.iterdir()) == []


async def test_a_damaged_file_fails_the_download_loudly(
    engine: Engine, artifacts_root: Path, tmp_path: Path
) -> None:
    doc = await run(engine, REPORT, name="report.csv")
    [listed] = await engine.artifacts.for_execution(doc["id"])
    (artifacts_root / doc["id"] / listed["id"]).write_bytes(b"id,name\n1,Mallory\n")
    with pytest.raises(
        ArtifactDamagedError, match=r"'report\.csv'.* damaged or was replaced: .*sha256"
    ):
        await engine.artifacts.download(doc["id"], tmp_path / "out")
    assert not (tmp_path / "out" / "report.csv").exists()
    (artifacts_root / doc["id"] / listed["id"]).unlink()
    with pytest.raises(StorageError, match=r"'report\.csv'.* is missing"):
        await engine.artifacts.download(doc["id"], tmp_path / "out")


async def test_an_unwritable_folder_fails_the_step_with_a_clear_message(
    engine: Engine, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    engine.artifacts.root = blocker
    doc = await engine.run(engine.load_text(textwrap.dedent(REPORT)), {"name": "report.csv"})
    assert doc["runtimeStatus"] == "Failed"
    assert "cannot write artifact 'report.csv'" in doc["error"]["message"]
    assert await engine.artifacts.for_execution(doc["id"]) == []


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\temp\\x.txt", "x.txt"),
        ("..", "artifact"),
        ("", "artifact"),
        ("a b (1).json", "a b (1).json"),
        ("bad\x00name;rm -rf*.txt", "bad_name_rm -rf_.txt"),
        (".hidden", "hidden"),
    ],
)
def test_names_are_sanitized(name: str, clean: str) -> None:
    assert sanitize_name(name) == clean


def test_long_names_are_cut_but_keep_their_extension() -> None:
    cut = sanitize_name("x" * 500 + ".csv")
    assert len(cut) == 200 and cut.endswith("x.csv")


def test_the_default_folder_sits_next_to_the_sqlite_file(tmp_path: Path) -> None:
    none = Settings()
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    assert default_artifacts_root(url, none) == tmp_path / "flow-artifacts"
    cwd = Path.cwd().resolve()
    assert default_artifacts_root("postgresql://h/db", none) == cwd / "flowledger-artifacts"
    assert default_artifacts_root("sqlite://", none) == cwd / "flowledger-artifacts"
    shared = Settings(artifacts_dir=str(tmp_path / "shared"))
    assert default_artifacts_root(url, shared) == tmp_path / "shared"
    assert default_artifacts_root("postgresql://h/db", shared) == tmp_path / "shared"


def test_the_folder_and_budget_come_from_the_environment(tmp_path: Path) -> None:
    env = {"FLOWLEDGER_ARTIFACTS": str(tmp_path), "FLOWLEDGER_OUTPUT_BUDGET": "64KiB"}
    settings = Settings.from_env(env)
    assert (settings.artifacts_dir, settings.output_budget) == (str(tmp_path), 65536)
    assert Settings.from_env({}).output_budget == 256 * 1024

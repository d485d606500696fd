"""`flowledger executions artifacts ID [--download DIR]` through the real command."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.e2e

CSV = b"id,name\n1,Ada\n"

PLUGIN = f"""
from pydantic import BaseModel

from flowledger import StepContext, step_type


class ReportInput(BaseModel):
    name: str


@step_type("acme.report")
async def report(data: ReportInput, ctx: StepContext) -> dict:
    return await ctx.artifacts.save(data.name, {CSV!r}, "text/csv")
"""

WORKFLOW = """
name: reports
steps:
  - {id: report, type: acme.report, input: {name: report.csv}}
  - {id: big, type: sys.transform, input: {value: "{{ 'x' * 5000 }}"}}
  - {id: size, type: sys.transform, input: {value: "{{ steps.big.output | length }}"}}
"""


@pytest.fixture
def execution(cli: Cli, tmp_path: Path) -> str:
    """A finished execution with a saved CSV and an offloaded output; returns its id."""
    (tmp_path / "report_steps.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "reports.yaml").write_text(textwrap.dedent(WORKFLOW))
    result = cli(
        "run",
        str(tmp_path / "reports.yaml"),
        "--plugin",
        str(tmp_path / "report_steps.py"),
        "--json",
        FLOWLEDGER_OUTPUT_BUDGET="1KiB",
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [s["outputData"] for s in doc["steps"].values() if s["stepId"] == "size"] == [5000]
    return str(doc["id"])


def test_list_then_download_with_checksums_and_no_overwrites(
    cli: Cli, execution: str, tmp_path: Path, db_url: str
) -> None:
    result = cli("executions", "artifacts", execution[:8], "--json")
    assert result.returncode == 0, result.stderr
    saved, output = json.loads(result.stdout)
    assert (saved["name"], saved["contentType"], saved["kind"]) == (
        "report.csv",
        "text/csv",
        "saved",
    )
    assert (saved["size"], saved["sha256"]) == (len(CSV), hashlib.sha256(CSV).hexdigest())
    assert (output["name"], output["kind"], output["stepId"]) == (
        "big.output.json",
        "output",
        "big",
    )
    assert saved["executionId"] == output["executionId"] == execution
    # The default folder sits next to the SQLite file (PostgreSQL: $FLOWLEDGER_ARTIFACTS).
    root = tmp_path / ("flow-artifacts" if db_url.startswith("sqlite") else "artifacts")
    stored = root / execution / saved["id"]
    assert stored.read_bytes() == CSV

    table = cli("executions", "artifacts", execution)
    assert table.returncode == 0, table.stderr
    for text in ("report.csv", "text/csv", "14 B", saved["sha256"][:12], "big.output.json"):
        assert text in table.stdout

    target = tmp_path / "downloads" / "run1"
    result = cli("executions", "artifacts", execution, "--download", str(target))
    assert result.returncode == 0, result.stderr
    assert "downloaded 2 file(s)" in result.stdout and "checksums verified" in result.stdout
    assert (target / "report.csv").read_bytes() == CSV
    assert json.loads((target / "big.output.json").read_text()) == "x" * 5000

    again = cli("executions", "artifacts", execution, "--download", str(target))
    assert again.returncode == 1
    assert "will not overwrite" in again.stderr and "Traceback" not in again.stderr

    stored.write_bytes(b"tampered")
    bad = cli("executions", "artifacts", execution, "--download", str(tmp_path / "other"))
    assert bad.returncode == 1
    assert f"artifact 'report.csv' ({saved['id']}) is damaged or was replaced" in bad.stderr
    assert "does not match its recorded sha256" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "other" / "report.csv").exists()

    # A FIFO in the file's place was "missing: ... does not exist".
    stored.unlink()
    os.mkfifo(stored)
    fifo = cli("executions", "artifacts", execution, "--download", str(tmp_path / "other"))
    assert fifo.returncode == 1
    assert f"artifact 'report.csv' ({saved['id']}) is damaged or was replaced" in fifo.stderr
    assert "is not a regular file inside the artifacts folder" in fifo.stderr
    assert "does not exist" not in fifo.stderr


def test_unknown_ids_and_empty_executions_are_explained(cli: Cli) -> None:
    assert cli("db", "upgrade").returncode == 0  # a database, without that execution
    missing = cli("executions", "artifacts", "does-not-exist")
    assert missing.returncode == 1
    assert "no execution has an id starting with 'does-not-exist'" in missing.stderr

    run = cli("run", "examples/hello.yaml", "--input", '{"name": "Ada"}', "--json")
    assert run.returncode == 0, run.stderr
    empty = cli("executions", "artifacts", json.loads(run.stdout)["id"])
    assert empty.returncode == 0, empty.stderr
    assert "this execution has no artifacts" in empty.stdout

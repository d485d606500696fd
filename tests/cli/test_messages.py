"""Validation messages in our words (no pydantic wording), with "did you mean"."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.e2e

BAD = """
name: bad
steps:
  - id: "bad id"
    type: sys.transform
    input: {value: 1}
  - id: a
    type: sys.transform
    aftr: [x]
    input: {value: 1}
  - id: b
    type: sys.transform
    after: a
    input: {value: 1}
  - id: c
    type: sys.set_variable
    input: {name: v, op: multiply, value: 1}
  - id: d
    type: sys.transform
    input: {valeu: 1}
"""

LIBRARY_WORDING = ("Input should", "String should", "Field required", "Extra inputs", "op: op")


def test_validate_speaks_plainly_and_suggests(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(BAD).lstrip())
    result = cli("validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert (
        f"{bad}:3:9: step 'bad id': id: a step id is lowercase letters, digits and '_', "
        in lines[0]
    )
    said = f"{bad}:8:5: step 'a': unknown field 'aftr'; did you mean 'after'? (its fields: id, "
    assert any(x.startswith(said) for x in lines)
    assert f"{bad}:12:12: step 'b': after: must be a list, not \"a\"" in lines
    assert any(
        "step 'c': input.op must be one of set, increment, append, merge" in x for x in lines
    )
    assert any(
        "step 'd': input: unknown input field 'valeu' for sys.transform; did you mean 'value'? "
        "(its fields: value)" in x
        for x in lines
    )
    for wording in LIBRARY_WORDING:
        assert wording not in result.stderr


def test_rerun_from_an_unknown_step_suggests_one(cli: Cli) -> None:
    run = cli("run", "examples/approval.yaml", "--input", '{"leads": 2}', "--json")
    assert run.returncode == 3, run.stderr
    execution = json.loads(run.stdout)["id"]
    rerun = cli("executions", "rerun", execution, "--from", "sned")
    assert rerun.returncode == 1
    assert "has no step 'sned'; did you mean 'send'?" in rerun.stderr


def test_option_values_are_checked_in_our_words(cli: Cli) -> None:
    role = cli("tokens", "create", "x", "--role", "boss")
    assert role.returncode == 2
    assert 'error: --role: must be one of viewer, operator, admin, not "boss"' in role.stderr
    limit = cli("executions", "list", "--limit", "0")
    assert limit.returncode == 2
    assert "error: --limit: must be at least 1, not 0" in limit.stderr
    # The application names its fields as JSON does; the command names its own option.
    age = cli("executions", "prune", "--older-than=soon")
    assert age.returncode == 2 and 'error: --older-than: "soon" is not a duration' in age.stderr
    workers = cli("worker", "--concurrency", "0")
    assert workers.returncode == 2
    assert "--concurrency must be between 1 and 1000, not 0" in workers.stderr
    # A pattern's refusal showed its regex, ^[A-Za-z0-9][A-Za-z0-9._-]*$.
    name = cli("tokens", "create", "ops team")
    assert name.returncode == 2 and "[A-Za-z0-9]" not in name.stderr, name.stderr
    assert (
        "error: name: must start with a letter or digit and hold only letters, digits, "
        "'.', '_' and '-' (no spaces); \"ops team\" does not"
    ) in name.stderr
    for result in (role, limit, workers, age, name):
        assert not any(wording in result.stderr for wording in LIBRARY_WORDING)


def test_a_plugin_that_does_not_load_is_the_user_s_to_fix(cli: Cli, tmp_path: Path) -> None:
    """validate said "internal error … this is a flowledger bug" for a missing plugin."""
    for command in ("validate", "run"):
        result = cli(command, "--plugin", str(tmp_path / "nope.py"), "examples/hello.yaml")
        assert result.returncode == 2, (command, result.stderr)
        assert f"error: plugin file {tmp_path / 'nope.py'} does not exist" in result.stderr
        assert "internal error" not in result.stderr

"""`executions show` prints the input (tour 25 M5), `executions list --workflow` with a
name no workflow has says so (M9), and a wait's schema reads the same in `run` and in
`show` (L7)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli

ECHO = """\
name: echo
steps:
  - {id: say, type: sys.transform, input: {value: "{{ input.text }}"}}
"""


def test_show_prints_the_input_and_json_has_it(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(ECHO)
    ran = cli("run", str(tmp_path / "echo.yaml"), "--input", '{"text": "hi"}', "--json")
    assert ran.returncode == 0, ran.stderr
    execution = json.loads(ran.stdout)["id"]
    assert json.loads(ran.stdout)["input"] == {"text": "hi"}
    shown = cli("executions", "show", execution[:8])
    assert shown.returncode == 0, shown.stderr
    assert 'input:    {"text": "hi"}\n' in shown.stdout
    as_json = json.loads(cli("executions", "show", execution, "--json").stdout)
    assert as_json["input"] == {"text": "hi"} == as_json["trigger"]["arguments"]

    long = "x" * 1000  # cut short, with where the whole of it is
    ran = cli("run", str(tmp_path / "echo.yaml"), "--input", json.dumps({"text": long}), "--json")
    execution = json.loads(ran.stdout)["id"]
    line = next(
        line
        for line in cli("executions", "show", execution).stdout.splitlines()
        if line.startswith("input:")
    )
    assert line.startswith('input:    {"text": "xxx') and long not in line
    assert line.endswith(f"… (whole: flowledger executions show {execution} --json)"), line


def test_list_by_a_workflow_name_nobody_has_says_which_are_close(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(ECHO)
    assert cli("run", str(tmp_path / "echo.yaml"), "--input", '{"text": "a"}').returncode == 0
    listed = cli("executions", "list", "--workflow", "ecoh")
    assert listed.returncode == 1, listed.stdout
    assert listed.stderr.strip() == "error: there is no workflow named 'ecoh'; did you mean 'echo'?"
    assert listed.stdout == ""
    found = cli("executions", "list", "--workflow", "echo")
    assert found.returncode == 0 and "1 execution" in found.stdout

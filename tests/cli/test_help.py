"""`--help` of every command reads well: value names, never Python type names (typer
releases differ; see cli.common.plain_help), and a help line for every option."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest

from tests.cli.conftest import FLOWLEDGER
from tests.conftest import REPO
from tests.inprocess import run_in_process

pytestmark = pytest.mark.e2e

#: What a Python type name or typer's own decoration looks like in help text.
TYPE_NAMES = re.compile(
    r"<(?:str|int|float|bool|list|dict|path|datetime|uuid)[^>]*>|\{[A-Z.]+\}|default: None"
)


def _commands() -> list[tuple[list[str], Any]]:
    import typer.main

    from flowledger.cli.app import app

    found: list[tuple[list[str], Any]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_every_option_has_a_help_line() -> None:
    missing = [
        f"{' '.join(path)} {param.opts}"
        for path, command in _commands()
        for param in command.params
        if param.param_type_name == "option" and not (param.help or "").strip()
    ]
    assert not missing, missing


HELP_ENV = {**os.environ, "COLUMNS": "160", "TERM": "dumb"}


def test_help_shows_no_python_type_names() -> None:
    # In this process (tests/inprocess.py): about 40 commands, a second of imports each
    # as subprocesses; the real process's --help is checked once below.
    results = [
        (path, run_in_process([*path, "--help"], env=HELP_ENV, cwd=REPO)) for path, _ in _commands()
    ]
    assert len(results) > 30
    for path, result in results:
        assert result.returncode == 0, (path, result.stderr)
        assert "Usage: flowledger" in result.stdout
        found = TYPE_NAMES.findall(result.stdout)
        assert not found, (path, found, result.stdout)
    rerun = {" ".join(path): r.stdout for path, r in results}["executions rerun"]
    assert re.search(r"--from\s+STEP_ID", rerun) and "pinned|latest" in rerun
    assert "Usage: flowledger executions rerun [OPTIONS] ID" in rerun


def test_the_real_command_prints_the_same_help() -> None:
    path = ["executions", "rerun", "--help"]
    real = subprocess.run([FLOWLEDGER, *path], capture_output=True, text=True, env=HELP_ENV)
    assert real.returncode == 0, real.stderr
    assert real.stdout == run_in_process(path, env=HELP_ENV, cwd=REPO).stdout


def test_each_command_is_summed_up_in_one_line() -> None:
    # A group's --help lists its commands by the first paragraph of their help, line
    # breaks kept: a summary wrapped in the docstring shows broken mid-sentence there.
    wrapped = [
        " ".join(path)
        for path, command in _commands()
        if path and "\n" in (command.help or "").strip().split("\n\n")[0]
    ]
    assert not wrapped, wrapped

"""The entry point builds only the invoked command (cli.launch): its table of which modules
register each command must match the whole command, or a command would lose subcommands."""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import sys
from typing import Any

import pytest
import typer.main

from flowledger.cli.app import app
from flowledger.cli.launch import COMMANDS


def tree(command: Any) -> dict[str, Any]:
    """A command's shape: its parameters and its subcommands, in order."""
    return {
        "params": [param.name for param in command.params],
        "commands": {name: tree(sub) for name, sub in getattr(command, "commands", {}).items()},
    }


@functools.cache
def whole() -> dict[str, Any]:
    """The whole command's shape, built once: Typer reading forty commands' signatures
    took ~0.4 s, and it is the same for every test (they only read it)."""
    return tree(typer.main.get_command(app))


def test_every_command_is_in_the_table() -> None:
    assert sorted(whole()["commands"]) == sorted(COMMANDS)


#: One fresh interpreter imports what the entry point has before it builds a command
#: (cli.launch, Typer), then forks a child per command: each child starts from that fresh
#: state, as a cold `flowledger NAME` would, builds the command alone and says what it got
#: (one interpreter's imports, where a process per command paid them twelve times).
PROBE = f"""
import json, os, sys, traceback
import typer.main
from typing import Any
from flowledger.cli.launch import only
{inspect.getsource(tree)}
for name in json.loads(sys.argv[1]):
    sys.stdout.flush()
    if os.fork() == 0:
        try:
            shape = tree(typer.main.get_command(only(name)))
            said = {{"name": name, "tree": shape, "app": "flowledger.cli.app" in sys.modules}}
        except BaseException:
            said = {{"name": name, "error": traceback.format_exc()}}
        print(json.dumps(said))
        sys.stdout.flush()
        os._exit(0)
    os.wait()
"""


@pytest.fixture(scope="module")
def built_alone() -> dict[str, dict[str, Any]]:
    """Each command as built alone in a fresh interpreter, by its name."""
    names = json.dumps(sorted(COMMANDS))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, names], capture_output=True, text=True, check=True
    )
    found = [json.loads(line) for line in done.stdout.splitlines()]
    return {said["name"]: said for said in found}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_command_built_alone_is_the_same_as_in_the_whole(
    name: str, built_alone: dict[str, dict[str, Any]]
) -> None:
    """In a fresh interpreter, where only the table's modules get imported."""
    said = built_alone[name]
    assert "error" not in said, said.get("error")
    assert said["app"] is False  # the whole command's module was not needed
    full = whole()
    assert said["tree"] == {"params": full["params"], "commands": {name: full["commands"][name]}}

"""The entry point builds only the invoked command (cli.launch): its table of which modules
register each command must match the whole command, or a command would lose subcommands."""

from __future__ import annotations

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


def whole() -> dict[str, Any]:
    return tree(typer.main.get_command(app))


def test_every_command_is_in_the_table() -> None:
    assert sorted(whole()["commands"]) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_command_built_alone_is_the_same_as_in_the_whole(name: str) -> None:
    """In a fresh interpreter, where only the table's modules get imported."""
    probe = (
        "import json, typer.main\nfrom typing import Any\nfrom flowledger.cli.launch import only\n"
        f"{inspect.getsource(tree)}\n"
        f"print(json.dumps(tree(typer.main.get_command(only({name!r})))))\n"
        "import sys\nassert 'flowledger.cli.app' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    alone = json.loads(done.stdout)
    full = whole()
    assert alone == {"params": full["params"], "commands": {name: full["commands"][name]}}

"""Cold start of the ``flowledger`` command against ``python -c pass`` (issue 10, target 4).

Runs, interleaved in one run so machine load hits all alike: ``python -c pass``,
``flowledger --version`` and a whole ``flowledger run`` of a 1-step workflow on a SQLite
file (migrated once before timing), and on a new file each round (its schema created).
flowledger's modules are byte-compiled first, as an installed wheel's are (an editable
install under PYTHONDONTWRITEBYTECODE=1 would compile every module on every run). Prints
the median wall time and CPU time of each and the ratios to ``python -c pass`` (targets:
--version at most 5x, run at most 15x), and the floor under ``run``: the import of the
libraries it is built on, alone (with and without SQLAlchemy, and SQLAlchemy by itself).

    .venv/bin/python bench/cold_start.py          # 15 rounds
    .venv/bin/python bench/cold_start.py 30
    .venv/bin/python bench/cold_start.py --instructions

``--instructions`` runs each command once under ``valgrind --tool=callgrind`` and prints
the instructions it executed instead of its times: the same count run after run, whatever
else the machine does (a minute or two).
"""

from __future__ import annotations

import compileall
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ONE_STEP = "name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"

# The libraries a run needs and this project standardises on (its dependencies, not its
# code): importing them alone is the floor under any `flowledger run` built on them.
# ``import pydantic`` alone loads only its lazy package, so the floor takes BaseModel, which
# every model needs; and the SQLite dialect, which a run on SQLite loads.
WITHOUT_SQLALCHEMY = (
    "import asyncio, typer, rich.console, rich.live, jinja2.sandbox, yaml; "
    "from pydantic import BaseModel"
)
LIBRARIES = (
    WITHOUT_SQLALCHEMY + "; import sqlalchemy.engine, sqlalchemy.sql, sqlalchemy.dialects.sqlite"
)


def _flowledger() -> list[str]:
    script = Path(sys.executable).parent / "flowledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowledger"]


def _timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _instructions(command: list[str]) -> int:
    """Instructions one run of ``command`` executes, counted by callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count for {command}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    counting = "--instructions" in sys.argv
    numbers = [a for a in sys.argv[1:] if a != "--instructions"]
    rounds = 1 if counting else int(numbers[0]) if numbers else 15
    import flowledger

    compileall.compile_dir(Path(flowledger.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as folder:
        workflow = Path(folder) / "one.yaml"
        workflow.write_text(ONE_STEP)
        db = f"sqlite:///{Path(folder) / 'cold.db'}"
        run = [*_flowledger(), "run", str(workflow), "--db"]
        commands: dict[str, Callable[[int], list[str]]] = {
            "python -c pass": lambda _: [sys.executable, "-c", "pass"],
            "flowledger --version": lambda _: [*_flowledger(), "--version"],
            "flowledger run (1 step)": lambda _: [*run, db],
            # A file of its own each round: the schema is created, as on a first run.
            "  ... on a new file": lambda n: [*run, f"sqlite:///{Path(folder) / f'new{n}.db'}"],
            # The floor under `run`: its libraries' imports, with and without SQLAlchemy.
            "import its libraries": lambda _: [sys.executable, "-c", LIBRARIES],
            "  ... but SQLAlchemy": lambda _: [sys.executable, "-c", WITHOUT_SQLALCHEMY],
            "import sqlalchemy alone": lambda _: [sys.executable, "-c", "import sqlalchemy"],
        }
        subprocess.run([*run, db], check=True, capture_output=True)
        if counting:
            base = _instructions(commands["python -c pass"](0))
            print(f"Python {sys.version.split()[0]}, instructions (callgrind), one run each")
            print(f"{'command':<26} {'instructions':>14} {'x pass':>7}")
            for name, command in commands.items():
                count = _instructions(command(0))
                print(f"{name:<26} {count:14,} {count / base:7.1f}")
            return
        os.environ.pop("PYTHONPROFILEIMPORTTIME", None)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for n in range(rounds):
            for name, command in commands.items():
                wall, cpu = _timed(command(n))
                walls[name].append(wall)
                cpus[name].append(cpu)
    base_wall = statistics.median(walls["python -c pass"])
    base_cpu = statistics.median(cpus["python -c pass"])
    print(f"Python {sys.version.split()[0]}, {rounds} interleaved rounds, medians")
    print(f"{'command':<26} {'wall ms':>9} {'x pass':>7} {'CPU ms':>9} {'x pass':>7}")
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"{name:<26} {wall * 1000:9.1f} {wall / base_wall:7.1f} "
            f"{cpu * 1000:9.1f} {cpu / base_cpu:7.1f}"
        )


if __name__ == "__main__":
    main()

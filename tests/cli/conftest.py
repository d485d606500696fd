"""Drive the ``flowledger`` command as a user would: in this process by default
(tests/inprocess.py: the same entry point, argv, environment, working directory and
separate stdout/stderr, without a second of imports per command), and as a real
subprocess where the process itself is what is tested (``cli_process``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.clifast_forkserver import forked_flowledger
from tests.conftest import REPO
from tests.inprocess import run_in_process

FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _environment(db_url: str) -> dict[str, str]:
    return {**os.environ, "FLOWLEDGER_DB": db_url, "COLUMNS": "200"}


@pytest.fixture
def cli(db_url: str) -> Cli:
    """The command on a fresh database (``$FLOWLEDGER_DB``), run in this process: on
    SQLite, and on PostgreSQL too for a test marked ``both_databases`` (the layers below
    the command run on both: tests/conftest.py, FACE_TESTS). ``timeout`` is accepted
    for ``cli_process``'s sake and not needed here."""
    env = _environment(db_url)

    def run(*args: str, timeout: float = 60, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return run_in_process(args, env={**env, **extra_env}, cwd=REPO)

    return run


@pytest.fixture
def cli_process(db_url: str) -> Cli:
    """The real command as a subprocess on a fresh database, for process-level facts."""
    env = _environment(db_url)

    def run(*args: str, timeout: float = 60, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FLOWLEDGER, *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**env, **extra_env},
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def forked_command(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``flowledger`` whose every run is a process of its own forked from a server that
    imported flowledger once (tests/cli/clifast_forkserver.py): for tests of what a
    command's own process prints and how it exits, without a cold start's ~0.9 s of CPU
    each. A cold start itself is tests/cli/test_lazy_imports.py's subject."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEDGER_")}
    with forked_flowledger(tmp_path_factory.mktemp("forks"), env) as folder:
        yield str(folder / "flowledger")

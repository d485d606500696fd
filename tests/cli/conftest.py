"""Drive the real ``flowledger`` command as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(db_url: str) -> Cli:
    """The real command on a fresh database (``$FLOWLEDGER_DB``): every acceptance test runs
    on SQLite and on PostgreSQL, like the rest of the suite (``db_url``)."""
    env = {**os.environ, "FLOWLEDGER_DB": db_url, "COLUMNS": "200"}

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

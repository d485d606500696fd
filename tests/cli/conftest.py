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
def cli(tmp_path: Path) -> Cli:
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'cli.db'}", "COLUMNS": "200"}

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

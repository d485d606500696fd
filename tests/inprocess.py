"""Run the ``flowledger`` command inside the test process, as a subprocess would see it.

A ``flowledger`` process costs about a second of imports before it does anything; most CLI
tests check what a command prints and its exit code, which do not need a process of their
own. :func:`run_in_process` calls the same entry point (``flowledger.cli.main``) with its own
argv, environment, working directory, stdin and captured stdout/stderr, and answers a
``CompletedProcess`` like ``subprocess.run(..., capture_output=True, text=True)``.

What only a real process shows (signals, a crash, a kill, the interpreter's exit, two
processes on one database, a cold start) stays with real subprocesses in the tests.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from flowledger.cli import main


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` inside (TZ applied), and what it was afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        time.tzset()


@contextmanager
def _logging_restored() -> Iterator[None]:
    """The command configures the root logger (a handler on its stderr, a level): put the
    test process's logging back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("alembic",)}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


def run_in_process(
    args: list[str] | tuple[str, ...],
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    input: str = "",
) -> subprocess.CompletedProcess[str]:
    """``flowledger ARGS`` in this process: exit code, stdout and stderr as text."""
    stdout, stderr = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(stdout, encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(stderr, encoding="utf-8", errors="backslashreplace", write_through=True)
    streams = sys.stdin, sys.stdout, sys.stderr
    argv, folder = sys.argv, os.getcwd()
    code: int = 0
    with _environment(env), _logging_restored():
        sys.stdin = io.TextIOWrapper(io.BytesIO(input.encode()), encoding="utf-8")
        sys.stdout, sys.stderr = out, err
        sys.argv = [str(Path(sys.executable).parent / "flowledger"), *args]
        os.chdir(cwd)
        try:
            main()
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:  # sys.exit("message"): printed to stderr, exit 1, as the interpreter does
                err.write(f"{exc.code}\n")
                code = 1
        finally:
            out.flush()
            err.flush()
            sys.stdin, sys.stdout, sys.stderr = streams
            sys.argv = argv
            os.chdir(folder)
    return subprocess.CompletedProcess(
        sys.argv[:1] + list(args),
        code,
        stdout.getvalue().decode("utf-8", errors="replace"),
        stderr.getvalue().decode("utf-8", errors="replace"),
    )

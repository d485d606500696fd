"""The live table of `flowledger run` on a real terminal (a pty of 24 rows): the clock
ticks while no event commits, the execution id shows from the start, the active step of
an 80-step workflow stays in view, and Ctrl-C says which execution is saved."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inprocess import run_in_process

pytestmark = pytest.mark.e2e

FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
STEPS = 80
SLOW = 40  # the step that runs for a while, in the middle


def _workflow(tmp_path: Path, delay: str) -> Path:
    lines = ["name: tall", "steps:"]
    for index in range(STEPS):
        after = f", after: [s{index - 1}]" if index else ""
        if index == SLOW:
            lines.append(
                f"  - {{id: s{index}, type: sys.delay{after}, input: {{duration: {delay}}}}}"
            )
        else:
            lines.append(
                f"  - {{id: s{index}, type: sys.transform{after}, input: {{value: {index}}}}}"
            )
    path = tmp_path / "tall.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def _ctrl_c_live() -> Iterator[None]:
    """A terminal's foreground command has Ctrl-C live; a test runner started as a
    background job without job control has SIGINT ignored, which its children would
    inherit (an ignored signal stays ignored across exec). Handled here, it is reset
    to the default in the child."""
    before = signal.getsignal(signal.SIGINT)
    if before is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


class Terminal:
    """`flowledger` on a pty of ``rows`` x ``cols``; ``read`` gathers what it drew."""

    def __init__(
        self,
        args: list[str],
        cwd: Path,
        rows: int = 24,
        cols: int = 100,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {
            k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FLOWLEDGER_DB")
        }
        env.update(TERM="xterm-256color", TZ="UTC", **(extra_env or {}))
        with _ctrl_c_live():
            self.process = subprocess.Popen(
                [FLOWLEDGER, *args],
                cwd=cwd,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
            )
        os.close(slave)
        self.screen = ""

    def read(self, seconds: float) -> str:
        """Everything drawn during ``seconds`` (or until it exits), escapes removed."""
        end = time.monotonic() + seconds
        chunks = []
        while time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                if self.process.poll() is not None:
                    break
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the other side closed: it exited
                break
            if not data:
                break
            chunks.append(data.decode(errors="replace"))
        text = ANSI.sub("", "".join(chunks))
        self.screen += text
        return text

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        os.close(self.master)


def _frames_until(terminal: Terminal, pattern: str, timeout: float) -> str:
    seen = ""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not re.search(pattern, seen):
        seen += terminal.read(0.2)
    assert re.search(pattern, seen), seen[-3000:]
    return seen


def test_the_clock_ticks_and_the_active_step_stays_in_view(tmp_path: Path) -> None:
    workflow = _workflow(tmp_path, "3s")
    terminal = Terminal(["run", str(workflow)], tmp_path)
    try:
        # The slow step is reached: it is shown while 80 rows cannot fit in 24.
        drawn = _frames_until(terminal, rf"s{SLOW}\s+sys\.delay\s+sleeping", 60)
        # No event commits during the delay: only the clock can change the frame. Read
        # until it has shown three times (a loaded machine draws fewer frames a second).
        clocks: set[str] = set()
        end = time.monotonic() + 2.5
        while len(clocks) < 3 and time.monotonic() < end:
            drawn += terminal.read(0.25)
            clocks = set(re.findall(r"tall\s+InProgress\s+(\d+\.\d)s", drawn))
        execution_id = re.search(r"id ([0-9a-f-]{36})", drawn)
        assert execution_id, drawn[-2000:]
        assert len(clocks) >= 3, f"the clock did not tick during the delay: {clocks}"
        # The last frame may still be arriving: look at the last one drawn in full.
        frame = drawn.split("tall  InProgress")[-2]
        assert re.search(r"… \d+ more steps \(", frame), frame  # finished rows collapsed
        assert f"s{SLOW}" in frame
        assert f"s{STEPS - 1}" not in frame or "more steps" in frame
        drawn += _frames_until(terminal, r"Completed\s+tall v1", 60)
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()
    assert execution_id.group(1) in terminal.screen.split("Completed  tall v1")[-1]
    rows = [line for line in frame.splitlines() if line.strip()]
    assert len(rows) <= 24, rows


def test_ctrl_c_prints_the_saved_execution(tmp_path: Path) -> None:
    workflow = _workflow(tmp_path, "30s")
    terminal = Terminal(["run", str(workflow)], tmp_path)
    try:
        drawn = _frames_until(terminal, rf"s{SLOW}\s+sys\.delay\s+sleeping", 60)
        shown = re.search(r"id ([0-9a-f-]{36})", drawn)
        assert shown
        os.killpg(terminal.process.pid, signal.SIGINT)
        said = _frames_until(terminal, r"interrupted; execution [0-9a-f-]{36} is saved", 30)
        assert f"interrupted; execution {shown.group(1)} is saved" in said
        assert terminal.process.wait(timeout=30) == 130
    finally:
        terminal.close()


FLAKY = """
name: flaky
steps:
  - id: call
    type: sys.http_request
    input: {method: GET, url: "http://127.0.0.1:9/nothing-listens"}
    retry: {max_attempts: 3, backoff: fixed, initial_delay: 3s, jitter: false}
"""


def test_a_step_waiting_for_its_retry_says_so(tmp_path: Path) -> None:
    workflow = tmp_path / "flaky.yaml"
    workflow.write_text(FLAKY)
    terminal = Terminal(
        ["run", str(workflow)], tmp_path, extra_env={"FLOWLEDGER_HTTP_ALLOW": "127.0.0.1"}
    )
    try:
        drawn = _frames_until(terminal, r"call\s+sys\.http_request\s+retry 2/3 in \d\.\ds", 60)
        drawn += terminal.read(1.0)
        lefts = re.findall(r"retry 2/3 in (\d\.\d)s", drawn)
        assert len(set(lefts)) >= 2, lefts  # the time left counts down between events
    finally:
        terminal.close()


CHILD = """
name: slow-child
steps:
  - {id: nap, type: sys.delay, input: {duration: 700ms}}
"""
PARENT = """
name: parent
steps:
  - id: fan_out
    type: sys.sub_workflow
    input: {workflow: slow-child, items: "{{ range(4) | list }}", concurrency: 1, input: {}}
"""


def test_a_sub_workflow_step_shows_its_children(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(PARENT)
    env = {k: v for k, v in os.environ.items() if k != "FLOWLEDGER_DB"}
    pushed = run_in_process(["workflows", "push", "child.yaml"], env=env, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    terminal = Terminal(["run", "parent.yaml"], tmp_path)
    try:
        drawn = _frames_until(
            terminal, r"fan_out\s+sys\.sub_workflow\s+InProgress, children [12]/4", 60
        )
        drawn += _frames_until(terminal, r"Completed\s+parent v1", 60)
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()


def test_watch_counts_the_children_a_worker_runs(tmp_path: Path, forked_command: str) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(PARENT)
    env = {k: v for k, v in os.environ.items() if k != "FLOWLEDGER_DB"}

    def flowledger(*args: str) -> str:
        """A command whose process is not the subject, run in this one (tests/inprocess.py)."""
        done = run_in_process(args, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    flowledger("workflows", "push", "child.yaml")
    execution = flowledger("start", "parent.yaml")
    terminal = Terminal(["executions", "watch", execution], tmp_path)
    worker = None
    try:
        # The worker (a fork: at work at once) starts once the watch draws: the children
        # run while it watches, not all before its first frame.
        drawn = _frames_until(terminal, rf"id {execution}", 60)
        worker = subprocess.Popen(
            [forked_command, "worker"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL
        )
        drawn += _frames_until(terminal, r"fan_out\s+sys\.sub_workflow\s+\S+, children [123]/4", 60)
        _frames_until(terminal, r"Completed\s+parent v1", 60)
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)

"""The README's commands are all true on a fresh clone: every ``sh`` block runs as written.

A block may be preceded by ``<!-- readme-test: skip: REASON -->`` (a benchmark, the whole
gate, a PostgreSQL server elsewhere); every other line runs, in order, in one shell in a
temporary folder holding a copy of the repository's tracked examples, with no
``FLOWLEDGER_DB`` (the default database, as for a new user). A line must exit 0, or
the code its comment announces (``# exits 3: …``).

Each ``flowledger`` a line runs is a process of its own, forked from one that imported
flowledger once (the ``forked_command`` fixture, tests/cli/clifast_forkserver.py): bash
parses and runs every line as written, with the command's own argv, environment, folder,
streams, signals and exit code; thirty cold starts were most of this test's time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

README = REPO / "README.md"
BIN = str(Path(sys.executable).parent)
#: The port the README's session and lead_followup.yaml's header start the example
#: enrichment service on, as a reader types them.
ENRICH_PORT = 8765


@contextlib.contextmanager
def enrich_port() -> Iterator[None]:
    """Held while a test runs commands that listen on ENRICH_PORT: pytest-xdist's workers
    would otherwise run two of them at once, and the second could not listen."""
    lock = Path(tempfile.gettempdir()) / f"flowledger-test-port-{ENRICH_PORT}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


#: The "Try it" line creates a venv first; the test runs in its own, already installed.
VENV_PREFIX = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/"


def sh_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Every ``sh`` block as (its readme-test marker or "", its lines)."""
    blocks: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() != "```sh":
            continue
        marker = lines[index - 1] if index and "readme-test" in lines[index - 1] else ""
        body = []
        for inner in lines[index + 1 :]:
            if inner.startswith("```"):
                break
            body.append(inner)
        blocks.append((marker, body))
    return blocks


def _expected_code(line: str) -> int:
    found = re.search(r"#\s*exits (\d)", line)
    return int(found.group(1)) if found else 0


def session_script(blocks: list[tuple[str, list[str]]]) -> str:
    """One bash script: each command, then a check of its exit code."""
    script = [
        "set -u",
        "trap 'kill $(jobs -p) 2>/dev/null' EXIT",
        'check() { if [ "$2" != "$1" ]; then echo "README LINE FAILED (exit $2, wanted $1):'
        ' $3" >&2; exit 1; fi; }',
    ]
    for marker, lines in blocks:
        if "skip" in marker:
            continue
        for raw in lines:
            line = raw.removeprefix(VENV_PREFIX).strip()
            if not line or line.startswith("#"):
                continue
            script.append(line)
            if " & " not in line and not line.endswith("&"):
                script.append(f"check {_expected_code(line)} $? {shlex.quote(line)}")
    return "\n".join(script) + "\n"


def fresh_clone(tmp_path: Path) -> Path:
    """The repository's tracked examples (what a clone has), in a folder of their own."""
    tracked = subprocess.run(
        ["git", "ls-files", "examples"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "examples"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    clone = tmp_path / "clone"
    for name in tracked + untracked:  # untracked: this branch's new files, before commit
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, target)
    return clone


def reader_environment() -> dict[str, str]:
    """A new user's: no FLOWLEDGER_ settings, the venv's commands on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEDGER_")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def run_script(
    script: str, cwd: Path, command: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, with ``command`` as the ``flowledger`` on PATH: the fixture
    ``forked_command`` (tests/cli/conftest.py), each of the README's thirty commands a
    process of its own, costing its work rather than a cold start each."""
    env = reader_environment()
    env["PATH"] = str(Path(command).parent) + os.pathsep + env["PATH"]
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_command_of_the_readme_runs(tmp_path: Path, forked_command: str) -> None:
    blocks = sh_blocks(README.read_text())
    assert len([b for b in blocks if "skip" not in b[0]]) >= 2
    assert all("skip:" in marker for marker, _ in blocks if "skip" in marker)  # with a reason
    clone = fresh_clone(tmp_path)
    with enrich_port():
        result = run_script(session_script(blocks), clone, forked_command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "waiting for input" in result.stdout or "AwaitingUserInput" in result.stdout
    assert (clone / "flowledger.db").is_file()  # the documented default, in the current folder


def test_the_lead_followup_header_command_runs(tmp_path: Path, forked_command: str) -> None:
    """examples/lead_followup.yaml runs with the exact command of its header."""
    header = []
    for line in (REPO / "examples/lead_followup.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("#   "):
            header.append(line.removeprefix("#   "))
    command = "\n".join(header)
    assert "enrich_server.py &" in command
    with enrich_port():
        result = run_script(
            "set -e\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + command,
            fresh_clone(tmp_path),
            forked_command,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Completed" in result.stdout


@pytest.mark.parametrize("example", ["hello.yaml", "cursor_paging.yaml"])
def test_a_snippet_said_to_be_shipped_is_the_shipped_file(example: str) -> None:
    text = README.read_text()
    found = re.search(
        rf"This is `examples/{re.escape(example)}`, as shipped:\n\n```yaml\n(.*?)```", text, re.S
    )
    assert found, f"the README shows examples/{example}"
    assert found.group(1) == (REPO / "examples" / example).read_text()


@pytest.mark.parametrize("document", ["README.md", "docs/performance.md"])
def test_the_docs_point_only_at_files_that_exist(document: str) -> None:
    names = re.findall(
        r"`([\w./-]+\.(?:ya?ml|py|md|json|toml)|[a-z.][\w.-]*/[\w./-]*)`",
        (REPO / document).read_text(),
    )
    assert names
    missing = [
        name
        for name in set(names)
        if not name.startswith("/")
        and not (REPO / name).exists()
        and not (REPO / "examples" / name).exists()
    ]
    assert not missing, f"{document} names files that are not in the repository: {missing}"


@pytest.mark.parametrize("document", ["README.md", "docs/performance.md"])
def test_table_rows_stand_on_lines_of_their_own(document: str) -> None:
    """Four rows of a table had been pasted into the middle of a README sentence."""
    stray = []
    fenced = False
    for number, line in enumerate((REPO / document).read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        outside_code = re.sub(r"`[^`]*`", "", line)
        if not fenced and not line.startswith("|") and outside_code.count(" | ") >= 3:
            stray.append(f"{document}:{number}: {line[:60]}")
    assert not stray, stray


def test_what_commands_leave_behind_is_ignored() -> None:
    for made in ("flowledger-artifacts/x.bin", "flowledger.db", "flowledger.db-wal"):
        ignored = subprocess.run(["git", "check-ignore", "-q", made], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{made} is not git-ignored"


def python_blocks(text: str) -> list[str]:
    """Every ``python`` block, as written."""
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


#: What the README leaves to the reader: its mail client, and the step that saves a lead.
STAND_INS = """
import types
from pydantic import BaseModel
from flowledger import StepContext, step_type


async def _send(data, key):
    return f"msg-{key}"


my_mailer = types.SimpleNamespace(send=_send)


class LeadInput(BaseModel):
    email: str


@step_type("acme.save_lead")
async def save_lead(data: LeadInput, ctx: StepContext) -> dict:
    await ctx.entities.create("Lead", {"Email": data.email})
    await ctx.artifacts.save("lead.txt", data.email.encode(), "text/plain")
    ctx.variables.apply("saved", "increment", 1)
    return {}
"""


def test_the_testing_section_s_tests_pass_under_pytest(tmp_path: Path) -> None:
    """Tour 24: its `async def` tests failed under pytest ("async def functions are not
    natively supported"): they say what runs them. Here in a project of their own (its
    own pytest configuration, pytest-asyncio's defaults), with the README's step type."""
    text = README.read_text()
    section = text.split("### Testing workflows and step types", 1)[1].split("\n## ", 1)[0]
    tests = python_blocks(section)
    assert len(tests) == 3 and all("async def test_" in block for block in tests)
    [step] = [b for b in python_blocks(text) if '@step_type("acme.send_email")' in b]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_readme_steps.py").write_text("\n".join([STAND_INS, step, *tests]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWLEDGER_", "PYTEST_"))}
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=tmp_path,
        env={**env, "FLOWLEDGER_ARTIFACTS": str(tmp_path / "artifacts")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "3 passed" in ran.stdout

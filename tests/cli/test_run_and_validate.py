"""`flowledger run` and `flowledger validate` end to end (SPEC §5 exit codes and formats)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import FLOWLEDGER, Cli
from tests.conftest import REPO
from tests.inprocess import run_in_process

pytestmark = pytest.mark.e2e


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_run_prints_the_final_document_with_json(cli: Cli) -> None:
    result = cli("run", "examples/hello.yaml", "--input", '{"name": "Ada Lovelace"}', "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == {"greeting": "Hello, Ada Lovelace!", "letters": 12}
    assert doc["createdBy"] == "cli:run"


def test_the_real_process_exits_with_the_code_and_keeps_stdout_apart(
    cli_process: Cli, tmp_path: Path
) -> None:
    """What the in-process ``cli`` cannot show: the interpreter's own exit code, and the
    document alone on the process's stdout with progress and errors on its stderr."""
    ran = cli_process("run", "examples/hello.yaml", "--input", '{"name": "Ada"}', "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["runtimeStatus"] == "Completed"
    path = _write(tmp_path, "bad.yaml", "name: x\nsteps: []\n")
    refused = cli_process("validate", path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert path in refused.stderr and "Traceback" not in refused.stderr


def test_run_shows_plain_progress_lines_when_piped(cli: Cli) -> None:
    result = cli("run", "examples/hello.yaml", "--input", '{"name": "Bo"}')
    assert result.returncode == 0, result.stderr
    assert "step.completed" in result.stdout and "greet" in result.stdout
    assert "step.disabled" in result.stdout and "long_name" in result.stdout
    assert "Completed" in result.stdout and "output:" in result.stdout


def test_a_reader_that_goes_away_neither_stops_nor_breaks_the_run(tmp_path: Path) -> None:
    """``flowledger run … | head -1``: what nobody reads is dropped quietly; the execution
    runs to its end and the exit code is its status's, as if all had been read."""
    path = _write(
        tmp_path,
        "many.yaml",
        "name: many\nsteps:\n  - id: each\n    type: sys.loop\n"
        '    input: {items: "{{ input.items }}"}\n    steps:\n'
        "      - {id: one, type: sys.transform, input: {value: 1}}\n",
    )
    # ~2 lines of ~55 bytes an item: 1000 items write ~110 KB, more than a pipe (64 KiB)
    # and stdout's buffer (8 KiB) hold together, so writes fail after the close however
    # fast the reader closes (2000 items proved no more, at twice the run's time).
    items = _write(tmp_path, "items.json", json.dumps({"items": list(range(1000))}))
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'p.db'}", "COLUMNS": "200"}
    command = [FLOWLEDGER, "run", path, "--input-file", items]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline().decode()
        process.stdout.close()  # the reader goes away, as `head -1` does
        errors = process.stderr.read().decode()
        code = process.wait(120)
    assert first.startswith("execution "), first
    assert code == 0, errors
    assert "Traceback" not in errors and "Error" not in errors, errors
    # Read back in this process (tests/inprocess.py): the run's process was the subject.
    shown = run_in_process(["executions", "show", first.split()[1], "--json"], env=env, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["runtimeStatus"] == "Completed"


def test_run_draws_a_live_table_on_a_terminal(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'tty.db'}", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [FLOWLEDGER, "run", "examples/hello.yaml", "--input", '{"name": "Ada"}'],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env=env,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(master)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "\x1b[" in screen  # drawn with terminal control codes, not plain lines
    assert "count_letters" in screen and "sys.set_variable" in screen
    assert "step.completed" not in screen


def test_failed_execution_exits_1(cli: Cli, tmp_path: Path) -> None:
    path = _write(
        tmp_path, "fail.yaml", "name: f\nsteps: [{id: x, type: sys.fail, input: {message: nope}}]\n"
    )
    result = cli("run", path)
    assert result.returncode == 1
    assert "nope" in result.stdout


def test_invalid_definition_exits_2_with_located_errors(cli: Cli, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bad.yaml",
        "name: bad\nsteps:\n  - id: a\n    type: sys.transform\n    input: {value: '{{ steps.zz.output }}'}\n"
        "  - id: a\n    type: sys.nope\n",
    )
    for command in (["run", path], ["validate", path]):
        result = cli(*command)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert any(line.startswith(f"{path}:5:") and "step 'a'" in line for line in lines), lines
        assert any(f"{path}:6:" in line and "duplicate step id" in line for line in lines)


def test_an_error_on_line_100_and_a_colon_word_print_as_written(cli: Cli, tmp_path: Path) -> None:
    """Rich read ``:100:`` as an emoji code: ``wf.yaml:100:3`` printed ``wf.yaml💯3``,
    and a value ``ten:fire:seconds`` came out ``ten🔥seconds``."""
    padding = "".join(f"# line {n}\n" for n in range(3, 100))
    text = (
        "name: hundred\nsteps:\n" + padding + "  - {id: a, type: sys.delay, "
        "input: {duration: 'ten:fire:seconds'}}\n"
    )
    path = _write(tmp_path, "hundred.yaml", text)
    result = cli("validate", path)
    assert result.returncode == 2
    assert f"{path}:100:" in result.stderr, result.stderr
    assert "ten:fire:seconds" in result.stderr, result.stderr


def test_validate_reports_every_file(cli: Cli, tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.yaml", "name: x\nsteps: []\n")
    result = cli("validate", "examples/hello.yaml", "examples/order_pipeline.yaml", bad)
    assert result.returncode == 2
    assert "examples/hello.yaml: ok" in result.stdout
    assert "examples/order_pipeline.yaml: ok" in result.stdout
    assert bad in result.stderr


def test_validate_with_db_opens_it_once_for_every_file(
    cli: Cli, tmp_path: Path, db_url: str
) -> None:
    """A database it cannot open was said once per file (tour 22a F6)."""
    bad = _write(tmp_path, "bad.yaml", "name: x\nsteps: []\n")
    files = ("examples/hello.yaml", bad, "examples/order_pipeline.yaml")
    missing = f"sqlite:///{tmp_path}/nothing.db"
    result = cli("validate", *files, "--db", missing)
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "no database at" in result.stderr, result.stderr
    assert result.stdout == "" and not (tmp_path / "nothing.db").exists()
    opened = cli("validate", *files, "--db", db_url)  # each file's problems, as without --db
    assert opened.returncode == 2
    assert "examples/hello.yaml: ok" in opened.stdout
    assert "examples/order_pipeline.yaml: ok" in opened.stdout
    assert opened.stderr.count(bad) == 1, opened.stderr


def test_validate_with_db_checks_the_pushed_names_of_a_job_file(
    cli: Cli, tmp_path: Path, db_url: str
) -> None:
    job = _write(
        tmp_path,
        "job.yaml",
        f"name: j\nworkflows:\n  - {{workflow: {REPO}/examples/hello.yaml, input: {{name: A}}}}"
        "\n  - {workflow: hello, input: {name: B}}\n",
    )
    assert cli("validate", job).returncode == 0  # a pushed name is checked when it runs
    found = cli("validate", job, "--db", db_url)
    assert found.returncode == 2, found.stderr
    assert "'hello' is neither a definition file nor a pushed workflow name" in found.stderr
    assert cli("workflows", "push", "examples/hello.yaml").returncode == 0
    assert cli("validate", job, "--db", db_url).returncode == 0
    missing = f"sqlite:///{tmp_path}/nothing.db"
    assert cli("validate", job, "--db", missing).returncode == 2
    assert not (tmp_path / "nothing.db").exists()


def test_validate_with_db_checks_the_workflows_sub_workflow_steps_name(
    cli: Cli, tmp_path: Path, db_url: str
) -> None:
    parent = _write(
        tmp_path,
        "parent.yaml",
        "name: greets\nsteps:\n"
        "  - {id: one, type: sys.sub_workflow, input: {workflow: hello, input: {name: A}}}\n"
        "  - id: each\n    type: sys.loop\n    input: {items: [1]}\n    steps:\n"
        "      - {id: pinned, type: sys.sub_workflow, input: {workflow: hello, version: 7}}\n"
        "  - {id: named, type: sys.sub_workflow, input: {workflow: '{{ input.w }}'}}\n"
        "  - {id: again, type: sys.sub_workflow, input: {workflow: greets}}\n"
        "  - {id: nameless, type: sys.sub_workflow, input: {workflow: hello, input: {}}}\n",
    )
    assert cli("validate", parent).returncode == 0  # names are checked when they run
    found = cli("validate", parent, "--db", db_url)
    assert found.returncode == 2, found.stderr
    assert f"{parent}:3:57: step 'one'" in found.stderr.splitlines()[0]
    assert "there is no workflow named 'hello'" in found.stderr
    assert "step 'pinned'" in found.stderr and "step 'named'" not in found.stderr
    assert "step 'again'" not in found.stderr  # itself: stored when pushed
    assert cli("workflows", "push", "examples/hello.yaml", "--db", db_url).returncode == 0
    pinned = cli("validate", parent, "--db", db_url)
    assert pinned.returncode == 2 and "step 'one'" not in pinned.stderr
    assert "workflow 'hello' has no version 7 (it has 1)" in pinned.stderr
    # A literal input is checked against the pushed child's input_schema too.
    assert "step 'nameless'" in pinned.stderr and "input_schema" in pinned.stderr


def test_piped_run_labels_the_lines_of_its_children(cli: Cli, tmp_path: Path, db_url: str) -> None:
    kid = _write(
        tmp_path,
        "kid.yaml",
        "name: kid\nsteps:\n  - {id: k, type: sys.transform, input: {value: 1}}\n",
    )
    assert cli("workflows", "push", kid, "--db", db_url).returncode == 0
    parent = _write(
        tmp_path,
        "par.yaml",
        "name: par\nsteps:\n  - {id: s, type: sys.sub_workflow, input: {workflow: kid}}\n",
    )
    result = cli("run", parent, "--db", db_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ours = [line for line in lines if "execution.completed" in line]
    assert len(ours) == 2, result.stdout
    [child] = [line for line in ours if " child " in line]
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} child [0-9a-f]{8} execution\.completed", child)
    [kid_started] = [line for line in lines if "step.started" in line and " k " in line]
    assert " child " in kid_started


def test_a_run_of_a_bad_file_creates_no_database(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    for bad in (str(tmp_path / "missing.yaml"), _write(tmp_path, "bad.yaml", "name: x\n")):
        result = cli("run", bad, "--db", url)
        assert result.returncode == 2
        assert "database:" not in result.stderr
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a: &x [1]\nb: *x\n", "anchors (&x) are not supported"),
        ("name: x\nname: y\nsteps: []\n", "duplicate"),
        ("name: x\non: yes\nsteps: []\n", "true/false"),
        ("{{{", ""),
        ("", "empty"),
    ],
)
def test_unsafe_or_broken_yaml_is_refused_without_traceback(
    cli: Cli, tmp_path: Path, text: str, needle: str
) -> None:
    result = cli("validate", _write(tmp_path, "y.yaml", text))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert needle.lower() in result.stderr.lower()


def test_invalid_input_exits_2(cli: Cli) -> None:
    for args in (["--input", "{not json"], ["--input", '{"name": 5}'], ["--input", "[1]"]):
        result = cli("run", "examples/hello.yaml", *args)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr and "error:" in result.stderr


def test_missing_file_and_bad_db_are_clear(cli: Cli) -> None:
    result = cli("run", "no/such/file.yaml")
    assert result.returncode == 2 and "no/such/file.yaml" in result.stderr
    for url in ("mysql://x", "notaurl"):  # refused input: exit 2, as a bad flag
        result = cli("run", "examples/hello.yaml", "--db", url, "--input", '{"name": "a"}')
        assert result.returncode == 2 and "unsupported database URL" in result.stderr
    result = cli("executions", "list", "--db", "postgresql+asyncpg://u@h/db")
    assert result.returncode == 2 and "unsupported PostgreSQL driver" in result.stderr


def test_executions_list_and_show(cli: Cli) -> None:
    run = cli(
        "run",
        "examples/hello.yaml",
        "--input",
        '{"name": "Ada"}',
        "--json",
        "--correlation-id",
        "order-42",
    )
    execution_id = json.loads(run.stdout)["id"]
    listed = json.loads(cli("executions", "list", "--json").stdout)
    assert [d["id"] for d in listed] == [execution_id]
    assert listed[0]["correlationId"] == "order-42"
    assert cli("executions", "list", "--status", "Failed", "--json").stdout.strip() == "[]"
    shown = json.loads(cli("executions", "show", execution_id[:8], "--json").stdout)
    assert shown["id"] == execution_id and shown["steps"]
    text = cli("executions", "show", execution_id).stdout
    assert "count_letters" in text and "Completed" in text
    table = cli("executions", "list").stdout
    assert execution_id in table and "hello v1" in table
    missing = cli("executions", "show", "ffffffff")
    assert missing.returncode == 1 and "no execution" in missing.stderr
    bad_status = cli("executions", "list", "--status", "Running")
    assert bad_status.returncode == 2 and "unknown status" in bad_status.stderr


def test_db_flag_overrides_the_environment(cli: Cli, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert cli("db", "upgrade").returncode == 0
    cli("run", "examples/hello.yaml", "--input", '{"name": "A"}', "--db", other)
    assert json.loads(cli("executions", "list", "--json").stdout) == []
    assert len(json.loads(cli("executions", "list", "--json", "--db", other).stdout)) == 1


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "flowledger 0.1.0"


def test_the_commands_run_prints_repeat_its_db(cli: Cli, tmp_path: Path) -> None:
    """Tour 24: `run approval.yaml --db sqlite:////tmp/other.db` printed a `submit:`
    command without `--db`; pasted, it opened the default database instead."""
    other = f"sqlite:///{tmp_path / 'other place.db'}"  # a space: quoted for the shell
    waiting = cli("run", "examples/approval.yaml", "--input", '{"leads": 2}', "--db", other)
    assert waiting.returncode == 3, waiting.stderr
    [submit] = [line for line in waiting.stdout.splitlines() if "submit: " in line]
    pasted = shlex.split(submit.split("submit: ", 1)[1])
    assert pasted[0] == "flowledger" and pasted[-2:] == ["--db", other]
    answered = cli(*pasted[1:])  # as the user pastes it (its --data as printed)
    assert answered.returncode == 0, answered.stderr
    assert "Completed" in answered.stdout
    # On the database of $FLOWLEDGER_DB (or the default), a command needs no --db.
    plain = cli("run", "examples/approval.yaml", "--input", '{"leads": 2}')
    assert plain.returncode == 3 and "--db" not in plain.stdout, plain.stdout


def test_run_exits_3_only_once_the_other_branches_are_done(cli: Cli, tmp_path: Path) -> None:
    """A branch waiting on a delay beside one waiting for a person: `run` exited 3 at
    once, the delay's branch left unrun until a worker came."""
    path = _write(
        tmp_path,
        "both.yaml",
        "name: both\n"
        "variables: {after_nap: false}\n"
        "steps:\n"
        "  - {id: ask, type: sys.wait_for_input, after: [], input: {prompt: Go on?}}\n"
        "  - {id: nap, type: sys.delay, after: [], input: {duration: 1s}}\n"
        "  - {id: mark, type: sys.set_variable, input: {name: after_nap, value: true}}\n",
    )
    result = cli("run", path, "--json")
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    assert doc["variables"] == {"after_nap": True}
    done = {step["stepId"]: step["status"] for step in doc["steps"].values()}
    assert done == {"ask": "InProgress", "nap": "Completed", "mark": "Completed"}


def test_run_refuses_a_child_workflow_that_is_not_pushed(
    cli: Cli, tmp_path: Path, db_url: str
) -> None:
    """Tour 24: `run` stored an execution that failed at once at its sys.sub_workflow
    step (exit 1); it opens the database, so it checks the name first (exit 2, located,
    nothing stored), as `validate --db` does. `start` leaves it to the step (the workers
    run it later: the child may be pushed by then)."""
    kid = _write(
        tmp_path, "kid.yaml", "name: process-order\nsteps:\n  - {id: k, type: sys.no_action}\n"
    )
    assert cli("workflows", "push", kid).returncode == 0
    parent = _write(
        tmp_path,
        "parent.yaml",
        "name: m13\nsteps:\n  - id: s\n    type: sys.sub_workflow\n"
        "    input: {workflow: process-ordr, input: {id: 1}}\n",
    )
    refused = cli("run", parent)
    assert refused.returncode == 2, refused.stderr
    assert (
        f"{parent}:5:23: step 's': input.workflow: there is no workflow named 'process-ordr'; "
        "did you mean 'process-order'?" in refused.stderr
    )
    assert json.loads(cli("executions", "list", "--json").stdout) == []
    started = cli("start", parent)
    assert started.returncode == 0, started.stderr


def test_start_and_trigger_take_the_input_from_a_file(cli: Cli, tmp_path: Path) -> None:
    """Tour 24: `run` took --input-file, `start` did not; one option, one rule."""
    data = _write(tmp_path, "in.json", '{"name": "Ada"}')
    started = cli("start", "examples/hello.yaml", "--input-file", data)
    assert started.returncode == 0, started.stderr
    doc = json.loads(cli("executions", "show", started.stdout.strip(), "--json").stdout)
    assert doc["trigger"]["arguments"] == {"name": "Ada"}
    assert cli("workflows", "push", "examples/hello.yaml").returncode == 0
    triggered = cli("workflows", "trigger", "hello", "--input-file", data, "--json")
    assert triggered.returncode == 0, triggered.stderr
    assert json.loads(triggered.stdout)["trigger"]["arguments"] == {"name": "Ada"}
    for command in (("start", "examples/hello.yaml"), ("workflows", "trigger", "hello")):
        both = cli(*command, "--input", "{}", "--input-file", data)
        assert both.returncode == 2 and "give --input or --input-file, not both" in both.stderr
        bad = cli(*command, "--input-file", str(tmp_path / "nope.json"))
        assert bad.returncode == 2 and "cannot read input file" in bad.stderr, bad.stderr

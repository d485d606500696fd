"""The operator's commands, driven as a user would: `executions logs`, `workflows
show|disable|enable|delete|trigger|backfill`, `executions prune`, `db info`, and a real
`flowledger worker --log-format json` whose execution another process follows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from flowledger.storage import open_store
from flowledger.storage.schema import executions
from flowledger.storage.sql import SQLStore
from tests.cli.conftest import Cli
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

PLUGIN = """\
from pydantic import BaseModel
from flowledger import StepContext, step_type


class In(BaseModel):
    lines: int = 2
    token: str = ""


class Out(BaseModel):
    said: int


@step_type("ops.talk", secret_fields=["token"])
async def talk(data: In, ctx: StepContext) -> Out:
    ctx.logger.debug("hidden")
    for i in range(data.lines):
        ctx.logger.info("line %d token=%s", i, data.token)
    try:
        raise KeyError("missing")
    except KeyError:
        ctx.logger.exception("it broke")
    return Out(said=data.lines)
"""

TALKER = """\
name: talker
steps:
  - {id: talk, type: ops.talk, input: {lines: 2, token: "{{ secrets.OPS_TOKEN }}"}}
  - {id: quiet, type: sys.transform, input: {value: 1}}
"""

HOURLY = """\
name: hourly
# Runs at the top of every hour.
triggers:
  - {type: schedule, cron: "0 * * * *", timezone: UTC, input: {n: 1}}
steps:
  - {id: s, type: sys.transform, input: {value: "{{ trigger.scheduledAt }}"}}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_logs_prints_what_steps_logged_redacted_per_step_and_as_json(
    cli: Cli, tmp_path: Path
) -> None:
    plugin = write(tmp_path, "ops_plugin.py", PLUGIN)
    talker = write(tmp_path, "talker.yaml", TALKER)
    env = {"FLOWLEDGER_SECRET_OPS_TOKEN": "t0ken-s3cret"}
    doc = json.loads(ok(cli("run", talker, "--plugin", plugin, "--json", **env)))
    short = doc["id"][:8]
    text = ok(cli("executions", "logs", short, **env)).splitlines()
    assert [line.split(" ", 2)[2] for line in text[:3]] == [
        "talk#1 INFO    line 0 token=***secrets.OPS_TOKEN***",
        "talk#1 INFO    line 1 token=***secrets.OPS_TOKEN***",
        "talk#1 ERROR   it broke",
    ]
    assert text[3].strip() == "Traceback (most recent call last):"
    assert text[-1].strip() == "KeyError: 'missing'"
    assert "s3cret" not in "\n".join(text)
    lines = [
        json.loads(line) for line in ok(cli("executions", "logs", short, "--json")).splitlines()
    ]
    assert [(line["stepId"], line["level"]) for line in lines] == [
        ("talk", "INFO"),
        ("talk", "INFO"),
        ("talk", "ERROR"),
    ]
    none = ok(cli("executions", "logs", short, "--step", "quiet"))
    assert none.startswith("no step logs of step quiet")
    followed = ok(cli("executions", "logs", short, "--follow", "--step", "talk"))
    assert followed.splitlines()[:3] == text[:3]  # ended: prints all, then returns
    missing = cli("executions", "logs", "nosuchid")
    assert missing.returncode == 1 and "nosuchid" in missing.stderr


@pytest.mark.slow
def test_operate_a_pushed_workflow(cli: Cli, tmp_path: Path) -> None:
    hourly = write(tmp_path, "hourly.yaml", HOURLY)
    ok(cli("workflows", "push", hourly))
    assert ok(cli("workflows", "disable", "hourly")) == "hourly: triggers disabled\n"
    assert ok(cli("workflows", "disable", "hourly")) == "hourly: triggers were already disabled\n"
    row = ok(cli("workflows", "list")).splitlines()[1].split()
    assert row[:2] == ["hourly", "1"] and "disabled" in row
    [listed] = json.loads(ok(cli("workflows", "list", "--json")))
    assert listed["enabled"] is False
    shown = ok(cli("workflows", "show", "hourly"))
    assert shown.splitlines()[0].startswith("workflow hourly: pushed version 1, DISABLED since ")
    assert "trigger: schedule 0 * * * * UTC\n" in shown  # no next fire while disabled
    assert "--- version 1" in shown
    assert HOURLY.rstrip() in shown  # as pushed, its comment too
    assert ok(cli("workflows", "enable", "hourly")) == "hourly: triggers enabled\n"
    assert ", next " in ok(cli("workflows", "show", "hourly", "--version", "1"))
    shown_json = json.loads(ok(cli("workflows", "show", "hourly", "--json")))
    assert shown_json["shown"]["document"]["name"] == "hourly"

    started = ok(cli("workflows", "trigger", "hourly", "--input", '{"n": 2}')).strip()
    doc = json.loads(ok(cli("executions", "show", started, "--json")))
    assert doc["trigger"]["type"] == "manual" and doc["trigger"]["arguments"] == {"n": 2}
    assert doc["trigger"]["cronExpression"] == "0 * * * *"  # its schedule's, as a tick's
    assert doc["createdBy"] == "cli:trigger"

    day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT")
    first = ok(cli("workflows", "backfill", "hourly", "--from", day + "01:00:00Z",
                   "--to", day + "02:30:00Z"))  # fmt: skip
    assert first.splitlines()[-1] == "started 2 of 2 ticks"
    again = ok(cli("workflows", "backfill", "hourly", "--from", day + "02:00:00Z",
                   "--to", day + "03:00:00Z", "--json"))  # fmt: skip
    assert [t["duplicate"] for t in json.loads(again)] == [True, False]
    bad = cli("workflows", "backfill", "hourly", "--from", "yesterday", "--to", day + "03:00:00Z")
    assert bad.returncode == 2 and "--from" in bad.stderr

    refused = cli("workflows", "delete", "hourly")
    assert refused.returncode == 1 and "4 unfinished executions" in refused.stderr
    deleted = ok(cli("workflows", "delete", "hourly", "--force"))
    assert "its 1 stored versions and its executions are kept" in deleted
    assert ok(cli("workflows", "list", "--json")) == "[]\n"
    gone = cli("start", "hourly")  # it still started its newest stored version
    assert gone.returncode == 1 and "'hourly' is not pushed: it was deleted" in gone.stderr
    unknown = cli("workflows", "disable", "hourly")
    assert unknown.returncode == 1 and "not pushed" in unknown.stderr


@pytest.mark.slow
def test_prune_and_db_info(cli: Cli, db_url: str, tmp_path: Path) -> None:
    done = json.loads(ok(cli("run", "examples/hello.yaml", "--input", '{"name": "a"}', "--json")))
    queued = ok(cli("start", "examples/hello.yaml", "--input", '{"name": "b"}')).strip()
    info = json.loads(ok(cli("db", "info", "--json")))
    assert info["tables"]["executions"] == 2 and info["tables"]["step_logs"] == 0
    assert info["backend"] == db_url.split(":")[0]
    assert info["sizeBytes"] > 0
    text = ok(cli("db", "info"))
    assert text.startswith("database   ") and "\nartifacts  " in text
    assert "  executions " in text

    assert ok(cli("executions", "prune", "--older-than", "30d", "--dry-run")).startswith(
        "would delete 0 executions that ended before "
    )
    asyncio.run(_age_everything(db_url, timedelta(days=40)))
    dry = json.loads(ok(cli("executions", "prune", "--older-than", "30d", "--dry-run", "--json")))
    assert (dry["dryRun"], dry["executions"]) == (True, 1)
    pruned = ok(cli("executions", "prune", "--older-than", "30d", "--status", "Completed"))
    assert pruned.startswith("deleted 1 executions that ended before ")
    gone = cli("executions", "show", done["id"])
    assert gone.returncode == 1
    assert json.loads(ok(cli("executions", "show", queued, "--json")))["runtimeStatus"] == (
        "NotStarted"
    )
    bad = cli("executions", "prune", "--older-than", "30d", "--status", "InProgress")
    assert bad.returncode == 2 and "never pruned" in bad.stderr
    assert cli("executions", "prune", "--older-than", "later").returncode == 2


def test_prune_s_help_says_the_shortest_age_it_refuses_below(cli: Cli) -> None:
    # Rich may wrap the help inside its box: read it as one line, the borders left out.
    shown = " ".join(ok(cli("executions", "prune", "--help")).replace("│", " ").split())
    assert "at least 1m" in shown, shown
    short = cli("executions", "prune", "--older-than", "0")
    assert short.returncode == 2 and "--older-than: must be at least 1m" in short.stderr


@pytest.mark.slow
def test_a_worker_logs_json_lines_and_another_process_follows_the_step_logs(
    cli: Cli, db_url: str, tmp_path: Path, forked_command: str
) -> None:
    plugin = write(tmp_path, "ops_plugin.py", PLUGIN)
    talker = write(tmp_path, "talker.yaml", TALKER)
    execution_id = ok(cli("start", talker, "--plugin", plugin)).strip()
    env = {**os.environ, "FLOWLEDGER_DB": db_url, "FLOWLEDGER_SECRET_OPS_TOKEN": "t0ken-s3cret"}
    follower = subprocess.Popen(
        [forked_command, "executions", "logs", execution_id, "--follow", "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [forked_command, "worker", "--plugin", plugin, "--log-format", "json"],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The follower returns by itself once the execution has ended.
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert [line["level"] for line in lines] == ["INFO", "INFO", "ERROR"]
        assert lines[0]["message"] == "line 0 token=***secrets.OPS_TOKEN***"
        mine = _worker_lines(worker, execution_id)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)  # drains and closes its stderr pipe
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    start, end = mine
    assert (start["workflow"], start["status"]) == ("talker", "running")
    assert (end["workflow"], end["status"]) == ("talker", "Completed")
    assert end["duration_ms"] >= 0 and end["action"] == "run_execution"


def test_a_worker_that_cannot_start_says_why_in_a_json_line(
    tmp_path: Path, forked_command: str
) -> None:
    """With JSON logs every stderr line is one object, the last words included: a log
    pipeline would drop or mangle a plain `error:` line."""
    missing = f"sqlite:///{tmp_path}/no/such/folder/x.db"
    done = subprocess.run(
        [forked_command, "worker", "--log-format", "json", "--db", missing],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and (lines[-1]["level"], lines[-1]["action"]) == ("ERROR", "exit")
    assert "does not exist" in lines[-1]["message"]


def test_what_a_command_refuses_first_is_a_json_line_when_json_is_asked(cli: Cli) -> None:
    """A bad option value or a bad FLOWLEDGER_* value was refused before JSON logging
    started: a plain `error:` line, however JSON was asked (--log-format, or the
    environment)."""
    cases = [
        (("worker", "--concurrency", "0", "--log-format", "json"), {}, "--concurrency must"),
        (("serve", "--port", "70000", "--log-format=json"), {}, "--port must"),
        (("worker",), {"FLOWLEDGER_LOG_FORMAT": "json", "FLOWLEDGER_LEASE": "x"}, "FLOWLEDGER_LEASE"),
        (("worker", "--log-format", "json"), {"FLOWLEDGER_MAX_PAGE": "lots"}, "FLOWLEDGER_MAX_PAGE"),
        (("executions", "list"), {"FLOWLEDGER_LOG_FORMAT": "json", "FLOWLEDGER_MAX_PAGE": "0"}, "FLOWLEDGER_MAX_PAGE"),
        # What typer refuses itself (an unknown option, a value of the wrong type) was its
        # box of text whatever was asked.
        (("worker", "--bogus", "--log-format", "json"), {}, "flowledger worker: No such option"),
        (("worker", "--concurrency", "abc"), {"FLOWLEDGER_LOG_FORMAT": "json"}, "flowledger worker: Invalid value for '--concurrency': must be a whole number, not \"abc\""),
    ]  # fmt: skip
    for args, env, words in cases:
        done = cli(*args, **env)
        assert done.returncode == 2, (args, done.stderr)
        lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line JSON
        assert (lines[-1]["level"], lines[-1]["action"]) == ("ERROR", "exit"), args
        assert lines[-1]["message"].startswith(words), lines
    # Text stays text, and --log-format text wins over the environment's json.
    done = cli("worker", "--concurrency", "0", "--log-format", "text", FLOWLEDGER_LOG_FORMAT="json")
    assert done.stderr.startswith("error: --concurrency must be between 1 and 1000")
    boxed = cli("worker", "--bogus")
    assert boxed.returncode == 2 and "No such option: --bogus" in boxed.stderr
    # A value of the wrong type in the house's words, not pydantic's ("Input should be a
    # valid integer, unable to parse string as an integer").
    typed = cli("executions", "list", "--limit", "5x")
    assert typed.returncode == 2 and 'must be a whole number, not "5x"' in typed.stderr


def _worker_lines(worker: subprocess.Popen[str], execution_id: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines about the execution, read until its end line."""
    assert worker.stderr is not None
    found: list[dict[str, Any]] = []
    for raw in worker.stderr:
        line = json.loads(raw)  # every line is one JSON object
        if line.get("execution_id") == execution_id and line["action"] == "run_execution":
            found.append(line)
            if line["status"] != "running":
                return found
    raise AssertionError("the worker stopped before reporting the execution's end")


async def _age_everything(db_url: str, age: timedelta) -> None:
    """Make every finished execution look ``age`` older than it is."""
    store = open_store(db_url)
    assert isinstance(store, SQLStore)
    try:
        with store.conn.begin():
            rows = store.conn.execute(
                select(executions.c.id, executions.c.created_at, executions.c.last_activity_at)
            )
            for execution_id, created, active in rows.all():
                store.conn.execute(
                    update(executions)
                    .where(executions.c.id == execution_id)
                    .values(created_at=created - age, last_activity_at=active - age)
                )
    finally:
        await store.close()

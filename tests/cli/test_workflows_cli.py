"""`flowledger workflows push|list`, and a real `flowledger worker` firing a pushed schedule."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flowledger import Engine
from flowledger.storage import ExecutionQuery
from tests.cli.conftest import FLOWLEDGER, Cli
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

DEFINITION = """\
name: morning
triggers:
  - {type: schedule, cron: "0 9 * * MON-FRI", timezone: Europe/Berlin, catch_up: latest}
  - {type: webhook, path: morning, auth: none}
steps:
  - {id: hello, type: sys.transform, input: {value: "{{ trigger.scheduledAt }}"}}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_push_and_show_name_a_schedule_overlap_policy_other_than_allow(
    cli: Cli, tmp_path: Path
) -> None:
    text = DEFINITION.replace("catch_up: latest", "overlap: skip")
    pushed = cli("workflows", "push", write(tmp_path, "morning.yaml", text))
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.splitlines()[1].startswith(
        "  schedule '0 9 * * MON-FRI' (Europe/Berlin, overlap skip): next "
    )
    shown = cli("workflows", "show", "morning").stdout.splitlines()
    assert shown[2].startswith("trigger: schedule 0 9 * * MON-FRI Europe/Berlin overlap skip, next")
    listed = json.loads(cli("workflows", "list", "--json").stdout)
    assert listed[0]["triggers"][0]["overlap"] == "skip"


def test_push_registers_new_versions_only_when_the_document_changed(
    cli: Cli, tmp_path: Path
) -> None:
    file = write(tmp_path, "morning.yaml", DEFINITION)
    first = cli("workflows", "push", file, "examples/hello.yaml")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "pushed morning version 1"
    assert lines[1].startswith(
        "  schedule '0 9 * * MON-FRI' (Europe/Berlin, catch_up latest): next "
    )
    assert lines[2] == "pushed hello version 1"
    again = cli("workflows", "push", file)
    assert again.stdout.splitlines()[0] == "morning is unchanged (version 1)"
    write(tmp_path, "morning.yaml", DEFINITION.replace("0 9 *", "30 8 *"))
    edited = cli("workflows", "push", file)
    assert edited.stdout.splitlines()[0] == "pushed morning version 2"

    listed = cli("workflows", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    by_name = {w["name"]: w for w in json.loads(listed.stdout)}
    assert sorted(by_name) == ["hello", "morning"]
    morning = by_name["morning"]
    assert morning["version"] == 2 and len(morning["versionId"]) == 36
    assert morning["pushedAt"].endswith("Z")
    schedule, webhook = morning["triggers"]
    assert schedule["cron"] == "30 8 * * MON-FRI" and schedule["catchUp"] == "latest"
    local = datetime.fromisoformat(schedule["nextFireAtLocal"])
    assert (local.hour, local.minute) == (8, 30) and local.weekday() < 5
    assert local.utcoffset() == local.astimezone(ZoneInfo("Europe/Berlin")).utcoffset()
    assert datetime.fromisoformat(schedule["nextFireAt"]) == local
    assert schedule["nextFireAt"] > morning["pushedAt"]
    assert webhook == {
        "type": "webhook",
        "path": "morning",
        "secretEnv": None,
        "auth": "none",
        "nextFireAt": None,
    }
    assert by_name["hello"]["triggers"] == []

    table = cli("workflows", "list")
    assert table.returncode == 0, table.stderr
    assert "schedule 30 8 * * MON-FRI Europe/Berlin" in table.stdout
    assert "webhook /hooks/morning" in table.stdout
    assert " UTC)" in table.stdout and ("CET" in table.stdout or "CEST" in table.stdout)


def test_an_invalid_file_stops_the_whole_push(cli: Cli, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        DEFINITION.replace("Europe/Berlin", "Mars/Olympus").replace("0 9", "0 25"),
    )
    result = cli("workflows", "push", "examples/hello.yaml", bad)
    assert result.returncode == 2
    assert f"{bad}:3:" in result.stderr
    assert "unknown time zone 'Mars/Olympus'" in result.stderr
    assert "is not a valid cron expression" in result.stderr
    assert "Traceback" not in result.stderr
    listed = cli("workflows", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("no workflows are pushed yet")  # not even hello


def test_an_entity_trigger_on_no_known_type_is_pushed_with_a_warning(
    cli: Cli, tmp_path: Path
) -> None:
    ghostly = "name: ghostly\ntriggers: [{type: entity, entity_type: Ghost}]\n" + (
        "steps: [{id: a, type: sys.transform, input: {value: 1}}]\n"
    )
    file = write(tmp_path, "ghostly.yaml", ghostly)
    pushed = cli("workflows", "push", file, "examples/hello.yaml")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.splitlines() == ["pushed ghostly version 1", "pushed hello version 1"]
    assert pushed.stderr.splitlines() == [
        "warning: ghostly: triggers[0]: no entity type 'Ghost' exists yet; "
        "the trigger fires once it is created"
    ]
    assert cli("entities", "types", "create", "Ghost").returncode == 0
    again = cli("workflows", "push", file)
    assert again.returncode == 0 and "warning" not in again.stderr


def test_two_files_with_one_name_and_a_missing_file_are_refused(cli: Cli, tmp_path: Path) -> None:
    copy = write(tmp_path, "copy.yaml", DEFINITION)
    twice = cli("workflows", "push", write(tmp_path, "m.yaml", DEFINITION), copy)
    assert twice.returncode == 2
    assert "both define workflow 'morning'" in twice.stderr
    missing = cli("workflows", "push", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "nope.yaml: cannot read the file" in missing.stderr
    assert cli("workflows", "list", "--json").stdout.strip() == "[]"


def test_a_running_worker_fires_a_pushed_schedule(cli: Cli, tmp_path: Path, db_url: str) -> None:
    every_second = DEFINITION.replace("0 9 * * MON-FRI", "* * * * * *").replace(
        "catch_up: latest", "catch_up: none"
    )
    pushed = cli("workflows", "push", write(tmp_path, "pulse.yaml", every_second))
    assert pushed.returncode == 0, pushed.stderr
    db = db_url  # the database of the cli fixture
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [FLOWLEDGER, "worker", "--db", db], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and asyncio.run(_completed(db)) < 2:
                time.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    logged = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, logged
    assert "schedule trigger 0 of morning: tick" in logged
    listed = cli("executions", "list", "--json", "--status", "Completed")
    done = json.loads(listed.stdout)
    assert len(done) >= 2, logged
    ticks = [d["trigger"] for d in done]
    assert all(t["type"] == "schedule" and t["cronExpression"] == "* * * * * *" for t in ticks)
    assert len({t["scheduledAt"] for t in ticks}) == len(ticks)


async def _completed(db: str) -> int:
    async with Engine(db) as engine:
        docs = await engine.list_executions(ExecutionQuery(status="Completed"))
        return len(docs)


def test_skipped_ticks_read_as_the_next_fire_time_does() -> None:
    from flowledger.cli.workflows import _skipped_text

    trigger = {
        "type": "schedule",
        "timezone": "Europe/Berlin",
        "skippedTicks": 3,
        "lastSkippedTickAt": "2026-12-01T10:00:00.000Z",
    }
    assert _skipped_text(trigger) == (
        "; 3 ticks skipped while an earlier one ran, the last 2026-12-01 11:00:00 CET "
        "(2026-12-01 10:00:00 UTC)"
    )
    assert _skipped_text({**trigger, "skippedTicks": 0}) == ""

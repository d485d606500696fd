"""`flowledger entities …` end to end, and a CLI write firing a trigger in a real worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flowledger import Engine
from tests.cli.conftest import Cli
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

SCHEMA_YAML = """\
type: object
properties:
  Email: {type: string}
  Score: {type: integer}
  Status: {type: string}
required: [Email]
"""


@pytest.fixture
def lead_type(cli: Cli, tmp_path: Path) -> None:
    schema = tmp_path / "lead.yaml"
    schema.write_text(SCHEMA_YAML)
    result = cli("entities", "types", "create", "Lead", "--schema", str(schema))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "created entity type Lead"


def _create(cli: Cli, data: dict[str, object]) -> str:
    result = cli("entities", "create", "Lead", "--data", json.dumps(data))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.usefixtures("lead_type")
def test_types_are_created_and_listed(cli: Cli, tmp_path: Path) -> None:
    again = cli("entities", "types", "create", "Lead", "--schema", str(tmp_path / "lead.yaml"))
    assert again.returncode == 0
    assert "already exists with this schema" in again.stdout
    other = cli("entities", "types", "create", "Lead")
    assert other.returncode == 1
    assert "'Lead' already exists with a different schema" in other.stderr
    assert cli("entities", "types", "create", "Note").returncode == 0
    listed = cli("entities", "types", "list", "--json")
    assert [t["name"] for t in json.loads(listed.stdout)] == ["Lead", "Note"]
    table = cli("entities", "types", "list").stdout
    assert "Email, Score, Status" in table and "Note" in table


def test_bad_schemas_are_refused(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("type: [object\n")
    result = cli("entities", "types", "create", "Lead", "--schema", str(broken))
    assert result.returncode == 2
    assert f"{broken}:2:1: invalid YAML" in result.stderr
    assert "the schema is not valid JSON or YAML" in result.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"type": "objekt"}')
    result = cli("entities", "types", "create", "Lead", "--schema", str(wrong))
    assert result.returncode == 2
    assert "not a valid JSON Schema: schema.type" in result.stderr
    missing = cli("entities", "types", "create", "Lead", "--schema", str(tmp_path / "none.json"))
    assert missing.returncode == 2
    assert "cannot read schema file" in missing.stderr
    assert "Traceback" not in result.stderr + missing.stderr


@pytest.mark.usefixtures("lead_type")
def test_create_show_update_list_delete(cli: Cli) -> None:
    entity_id = _create(cli, {"Email": "ada@example.com", "Score": 3})
    _create(cli, {"Email": "bob@example.com", "Score": 12})
    shown = json.loads(cli("entities", "show", entity_id, "--json").stdout)
    assert shown["payload"] == {"Email": "ada@example.com", "Score": 3}
    assert shown["version"] == 1 and shown["entityType"] == "Lead"
    updated = cli("entities", "update", entity_id, "--data", '{"Score": 20, "Status": "Hot"}')
    assert updated.returncode == 0, updated.stderr
    assert f"updated Lead {entity_id} (version 2)" in updated.stdout
    listed = cli(
        "entities",
        "list",
        "Lead",
        "--json",
        "--order-by",
        "-Score",
        "--filter",
        '{"Score": {"gte": 10}}',
    )
    assert [e["payload"]["Score"] for e in json.loads(listed.stdout)] == [20, 12]
    table = cli("entities", "list", "Lead", "--limit", "1").stdout
    assert "1-1 of 2" in table
    human = cli("entities", "show", entity_id).stdout
    assert f"Lead {entity_id}  version 2" in human and '"Status": "Hot"' in human
    deleted = cli("entities", "delete", entity_id)
    assert deleted.returncode == 0 and f"deleted Lead {entity_id}" in deleted.stdout
    gone = cli("entities", "show", entity_id)
    assert gone.returncode == 1
    assert f"entity {entity_id} does not exist" in gone.stderr


@pytest.mark.usefixtures("lead_type")
def test_list_is_newest_first_on_every_page(cli: Cli) -> None:
    """The command listed the oldest first, while the API (and the README) say newest."""
    newest = [_create(cli, {"Email": f"p{i}@x", "Score": 1}) for i in range(3)][::-1]
    listed = cli("entities", "list", "Lead", "--json")
    assert [doc["id"] for doc in json.loads(listed.stdout)] == newest
    table = cli("entities", "list", "Lead").stdout
    assert sorted(newest, key=table.index) == newest
    rest = cli("entities", "list", "Lead", "--limit", "2", "--offset", "2", "--json")
    assert [doc["id"] for doc in json.loads(rest.stdout)] == newest[2:]
    tied = cli("entities", "list", "Lead", "--order-by", "Score", "--json")
    assert [doc["id"] for doc in json.loads(tied.stdout)] == newest
    first = cli("entities", "list", "Lead", "--limit", "2").stdout
    assert "1-2 of 3 (use --offset for more)" in first
    # A page of none printed "no Lead entities match" with three there.
    none = cli("entities", "list", "Lead", "--limit", "0")
    assert none.returncode == 2 and "error: --limit: must be at least 1, not 0" in none.stderr


@pytest.mark.usefixtures("lead_type")
def test_bad_input_exits_2_with_the_reason(cli: Cli) -> None:
    violation = cli("entities", "create", "Lead", "--data", '{"Email": "a@b", "Score": "high"}')
    assert violation.returncode == 2
    assert "payload.Score: 'high' is not of type 'integer'" in violation.stderr
    required = cli("entities", "create", "Lead", "--data", "{}")
    assert required.returncode == 2
    assert "payload: 'Email' is a required property" in required.stderr
    not_json = cli("entities", "create", "Lead", "--data", "{nope")
    assert not_json.returncode == 2 and "--data is not valid JSON" in not_json.stderr
    not_object = cli("entities", "create", "Lead", "--data", "[1]")
    assert not_object.returncode == 2 and "--data must be a JSON object" in not_object.stderr
    operator = cli("entities", "list", "Lead", "--filter", '{"Score": {"near": 1}}')
    assert operator.returncode == 2 and "unknown operator 'near'" in operator.stderr
    unknown = cli("entities", "list", "Leed")
    assert unknown.returncode == 1 and "entity type 'Leed' does not exist" in unknown.stderr
    order = cli("entities", "list", "Lead", "--order-by", "Email", "--order-by", "Sc;ore")
    assert order.returncode == 2
    assert "error: --order-by: 'Sc;ore' is not a payload field name" in order.stderr
    for result in (violation, required, not_json, not_object, operator, unknown, order):
        assert "Traceback" not in result.stderr


def test_the_example_validates(cli: Cli) -> None:
    result = cli("validate", "examples/entity_trigger.yaml")
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("lead_type")
def test_a_cli_write_fires_the_example_trigger_in_a_worker(
    cli: Cli, db_url: str, forked_command: str
) -> None:
    db = db_url  # the database of the cli fixture

    async def push() -> None:
        async with Engine(db) as engine:
            await engine.push(engine.load(REPO / "examples" / "entity_trigger.yaml"))

    asyncio.run(push())
    entity_id = _create(cli, {"Email": "ada@example.com", "Status": "New"})
    worker = subprocess.Popen(
        [forked_command, "worker"],
        cwd=REPO,
        env={**os.environ, "FLOWLEDGER_DB": db},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        docs: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = cli("executions", "list", "--json", "--workflow", "rank-new-lead")
            docs = json.loads(listed.stdout) if listed.returncode == 0 else []
            if docs and docs[0]["runtimeStatus"] == "Completed":
                break
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, log = worker.communicate(timeout=30)
    assert [d["runtimeStatus"] for d in docs] == ["Completed"], log
    assert docs[0]["output"] == {"lead": "ada@example.com", "rank": 1, "was": "New"}
    shown = json.loads(cli("entities", "show", entity_id, "--json").stdout)
    # The workflow's own update (Status Ranked) did not start it again.
    assert shown["payload"] == {"Email": "ada@example.com", "Status": "Ranked", "Rank": 1}

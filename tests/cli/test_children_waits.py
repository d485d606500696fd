"""A parent that waits through its children: `executions input PARENT STEP` names the
children that wait (tour 25 L1), and a wait's schema reads the same whichever way the
workflow came (L7: a pushed one is stored with sorted keys)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Cli

CHILD = """\
name: child-asks
steps:
  - id: ask
    type: sys.wait_for_input
    input:
      prompt: ok?
      schema: {required: [ok], type: object, properties: {ok: {type: boolean}}}
"""
PARENT = """\
name: parent-of-two
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: child-asks, items: [1, 2], input: {}}
"""
SCHEMA = 'schema: {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}'


def test_input_to_a_parent_names_the_children_that_wait(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(PARENT)
    assert cli("workflows", "push", str(tmp_path / "child.yaml")).returncode == 0
    ran = cli("run", str(tmp_path / "parent.yaml"))
    assert ran.returncode == 3, ran.stderr
    parent = re.search(r"id ([0-9a-f-]{36})", ran.stdout)
    assert parent is not None, ran.stdout
    listed = cli("executions", "list", "--parent", parent[1], "--json")
    children = sorted(doc["id"] for doc in json.loads(listed.stdout))
    assert len(children) == 2

    sent = cli("executions", "input", parent[1][:8], "ask", "--data", '{"ok": true}')
    assert sent.returncode == 1, sent.stdout
    said = sent.stderr
    assert "(steps waiting for input: none); its child executions wait for input: " in said
    for child in children:
        assert f"{child} at step 'ask'" in said, said
    assert "send the input to the child execution, by its id" in said

    # The children's version is the pushed one (stored sorted): printed in one order.
    assert ran.stdout.count(SCHEMA) == 2, ran.stdout
    shown = cli("executions", "show", children[0])
    assert SCHEMA in shown.stdout, shown.stdout


def test_a_schema_reads_in_one_order_whatever_order_its_file_has(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    ran = cli("run", str(tmp_path / "child.yaml"))  # from the file: its own order
    assert ran.returncode == 3, ran.stderr
    assert SCHEMA in ran.stdout, ran.stdout

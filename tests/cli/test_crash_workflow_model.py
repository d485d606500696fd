"""Kill -9 workers while parents wait on children and entity writes fire triggers.

Nothing may be lost or doubled: every parent ends Completed with exactly its children,
every entity is written once, and every entity event starts exactly one execution.
`--cycles N` (or FLOWLEDGER_CRASH_CYCLES) sets the number of kills, as for the other
crash test; FLOWLEDGER_CRASH_SEED replays one run.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine
from flowledger.storage import ExecutionQuery
from tests.cli.test_crash_recovery import PLUGIN, kill_workers_at_random

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHILD = """
name: crash-child
input_schema: {{type: object, properties: {{n: {{type: integer}}}}, required: [n]}}
steps:
  - {{id: work, type: crash.work, input: {{ms: 30, ledger: "{ledger}"}}}}
output: "{{{{ input.n * 10 }}}}"
"""

PARENT = """
name: crash-parent
steps:
  - id: record
    type: sys.create_entity
    input: {entity_type: Order, payload: {parent: "{{ execution.id }}"}}
  - id: kids
    type: sys.sub_workflow
    input: {workflow: crash-child, items: [1, 2, 3], concurrency: 2, input: {n: "{{ loop.kids.item }}"}}
  - {id: nap, type: sys.delay, input: {duration: 100ms}}
output: "{{ steps.kids.output.executions | map(attribute='output') | sum }}"
"""

TRIGGERED = """
name: crash-on-order
triggers: [{{type: entity, entity_type: Order, events: [created]}}]
steps:
  - {{id: work, type: crash.work, input: {{ms: 20, ledger: "{ledger}"}}}}
"""


async def _setup(db_url: str, ledger: Path, count: int) -> list[str]:
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        await engine.entities.create_type("Order", {"type": "object"})
        await engine.push(engine.load_text(CHILD.format(ledger=ledger)))
        await engine.push(engine.load_text(TRIGGERED.format(ledger=ledger)))
        parent = engine.load_text(PARENT)
        return [await engine.start(parent) for _ in range(count)]


async def _all(db_url: str) -> dict[str, list[dict[str, Any]]]:
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        found: dict[str, list[dict[str, Any]]] = {}
        for name in ("crash-parent", "crash-child", "crash-on-order"):
            rows = await engine.list_executions(ExecutionQuery(workflow=name, limit=1000))
            found[name] = [await engine.get_execution(r["id"]) for r in rows]
        found["orders"] = list((await engine.entities.list("Order", limit=1000)).entities)
        return found


def test_kills_lose_and_double_no_child_no_entity_no_trigger(
    tmp_path: Path, db_url: str, request: pytest.FixtureRequest, forked_command: str
) -> None:
    cycles = request.config.getoption("--cycles") or int(
        os.environ.get("FLOWLEDGER_CRASH_CYCLES", "12")
    )
    seed = int(os.environ.get("FLOWLEDGER_CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"crash test seed {seed}, {cycles} cycles")
    ledger = tmp_path / "ledger.txt"
    parents = asyncio.run(_setup(db_url, ledger, max(8, cycles)))
    log = tmp_path / "workers.log"

    def settled() -> bool:
        state = asyncio.run(_all(db_url))
        every = [d for docs in list(state.values())[:3] for d in docs]
        done = all(d["runtimeStatus"] == "Completed" for d in every)
        return done and len(state["crash-on-order"]) >= len(parents)

    assert kill_workers_at_random(db_url, log, rng, cycles, settled, forked_command) == cycles
    state = asyncio.run(_all(db_url))
    tail = log.read_text()[-3000:]
    for name in ("crash-parent", "crash-child", "crash-on-order"):
        bad = [(d["id"], d["runtimeStatus"], d["error"]) for d in state[name]
               if d["runtimeStatus"] != "Completed"]  # fmt: skip
        assert not bad, f"seed {seed}: {name}: {bad}\n{tail}"
    assert sorted(d["id"] for d in state["crash-parent"]) == sorted(parents)
    for parent in state["crash-parent"]:
        assert parent["output"] == 60, f"seed {seed}"
    # Exactly three children per parent: none lost, none started twice.
    per_parent = Counter(c["parentWorkflowExecutionId"] for c in state["crash-child"])
    assert per_parent == dict.fromkeys(parents, 3), f"seed {seed}: {per_parent}"
    # One entity per parent, and one triggered execution per entity.
    owners = Counter(e["payload"]["parent"] for e in state["orders"])
    assert owners == dict.fromkeys(parents, 1), f"seed {seed}: {owners}"
    triggered = Counter(d["trigger"]["entity"]["id"] for d in state["crash-on-order"])
    assert triggered == {e["id"]: 1 for e in state["orders"]}, f"seed {seed}: {triggered}"

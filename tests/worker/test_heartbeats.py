"""``ctx.heartbeat(details)``: a long custom step's progress survives its process. A
worker is killed (SIGKILL) mid-step; the next worker's attempt reads the last saved
details as ``ctx.heartbeat_details`` and resumes from there (tour 25 M11: a 2-hour
export restarted from zero)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine
from flowledger.codec import loads
from flowledger.runtime.heartbeats import Heartbeat
from flowledger.runtime.reserved import engine_part
from flowledger.steps.base import MAX_HEARTBEAT_BYTES
from flowledger.testing import step_context
from tests.cli.conftest import FLOWLEDGER
from tests.conftest import REPO

PLUGIN = """\
import time
from pydantic import BaseModel
from flowledger import StepContext, step_type


class In(BaseModel):
    pages: int
    ledger: str


@step_type("hb.export")
def export(data: In, ctx: StepContext) -> dict:
    start = (ctx.heartbeat_details or {}).get("page", 0)
    for page in range(start, data.pages):
        with open(data.ledger, "a") as ledger:
            ledger.write(f"{ctx.attempt} {page}\\n")
        time.sleep(0.2)
        ctx.heartbeat({"page": page + 1})
    return {"resumed_from": start, "attempt": ctx.attempt}
"""

FLOW = """\
name: export
steps:
  - {{id: b, type: hb.export, input: {{pages: 12, ledger: "{ledger}"}}}}
"""


def _worker(db_url: str, plugin: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [FLOWLEDGER, "worker", "--db", db_url, "--plugin", str(plugin), "--lease", "2s"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


async def _saved_page(db_url: str, execution_id: str) -> int | None:
    """The heartbeat page stored with the step's first attempt (None: none yet)."""
    async with Engine(db_url) as engine:
        rows = await engine.store.get_step_executions(execution_id)
    for row in rows:
        if row["attempt"] == 1 and row["state"]:
            beat = engine_part(loads(row["state"])).get("heartbeat")
            return None if beat is None else int(beat["page"])
    return None


async def _start(db_url: str, plugin: Path, flow: str) -> str:
    async with Engine(db_url, plugins=[str(plugin)]) as engine:
        return await engine.start(engine.load_text(flow))


async def _document(db_url: str, plugin: Path, execution_id: str) -> dict[str, Any]:
    async with Engine(db_url, plugins=[str(plugin)]) as engine:
        return await engine.get_execution(execution_id)


@pytest.mark.e2e
def test_the_attempt_after_a_killed_worker_resumes_from_the_last_heartbeat(
    tmp_path: Path, db_url: str
) -> None:
    plugin = tmp_path / "hb_plugin.py"
    plugin.write_text(PLUGIN)
    ledger = tmp_path / "ledger.txt"
    execution_id = asyncio.run(_start(db_url, plugin, FLOW.format(ledger=ledger)))
    killed = _worker(db_url, plugin, tmp_path / "w1.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            saved = asyncio.run(_saved_page(db_url, execution_id))
            if saved is not None and saved >= 2:
                break
            time.sleep(0.05)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    saved = asyncio.run(_saved_page(db_url, execution_id))  # nobody writes it any more
    assert saved is not None and 2 <= saved < 12, saved
    worker = _worker(db_url, plugin, tmp_path / "w2.log")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            doc = asyncio.run(_document(db_url, plugin, execution_id))
            if doc["runtimeStatus"] in ("Completed", "Failed"):
                break
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert doc["runtimeStatus"] == "Completed", (tmp_path / "w2.log").read_text()[-3000:]
    [done] = [s for s in doc["steps"].values() if s["status"] == "Completed"]
    assert done["outputData"] == {"resumed_from": saved, "attempt": 2}
    second = [int(line.split()[1]) for line in ledger.read_text().splitlines() if line[0] == "2"]
    assert second == list(range(saved, 12))  # not from page 0


async def test_a_burst_of_heartbeats_is_saved_once_with_the_latest_details() -> None:
    """Throttled: a tight loop costs a write per window, not one per call."""
    saved: list[Any] = []
    heartbeat = Heartbeat(asyncio.get_running_loop(), saved.append, every=0.2)
    for page in range(1000):
        heartbeat({"page": page})
    async with asyncio.timeout(10):
        while not saved:
            await asyncio.sleep(0.01)
    assert saved == [{"page": 999}]
    heartbeat({"page": 1000})  # within or after the window: written, after it
    async with asyncio.timeout(10):
        while len(saved) < 2:
            await asyncio.sleep(0.01)
    assert saved[1] == {"page": 1000}


async def test_heartbeat_details_must_be_small_json() -> None:
    async with step_context(heartbeat_details={"page": 2}) as ctx:
        assert ctx.heartbeat_details == {"page": 2}
        ctx.heartbeat({"page": 3})  # a context outside a run: checked, kept nowhere
        with pytest.raises(ValueError, match=r"ctx\.heartbeat: details must be JSON data"):
            ctx.heartbeat({"at": object()})
        with pytest.raises(ValueError, match=f"more than {MAX_HEARTBEAT_BYTES}: keep a cursor"):
            ctx.heartbeat({"rows": "x" * MAX_HEARTBEAT_BYTES})

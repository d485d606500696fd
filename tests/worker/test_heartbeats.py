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


async def _saved_page(engine: Engine, execution_id: str) -> int | None:
    """The heartbeat page stored with the step's first attempt (None: none yet)."""
    for row in await engine.store.get_step_executions(execution_id):
        if row["attempt"] == 1 and row["state"]:
            beat = engine_part(loads(row["state"])).get("heartbeat")
            return None if beat is None else int(beat["page"])
    return None


@pytest.mark.e2e
async def test_the_attempt_after_a_killed_worker_resumes_from_the_last_heartbeat(
    tmp_path: Path, db_url: str
) -> None:
    plugin = tmp_path / "hb_plugin.py"
    plugin.write_text(PLUGIN)
    ledger = tmp_path / "ledger.txt"
    # One engine of the test's own reads what the workers write: opening one per look
    # (every 50 ms) cost more CPU than the workers.
    async with Engine(db_url, plugins=[str(plugin)]) as engine:
        execution_id = await engine.start(engine.load_text(FLOW.format(ledger=ledger)))
        killed = _worker(db_url, plugin, tmp_path / "w1.log")
        try:
            async with asyncio.timeout(60):
                while (saved := await _saved_page(engine, execution_id)) is None or saved < 2:
                    await asyncio.sleep(0.05)
        finally:
            killed.send_signal(signal.SIGKILL)
            await asyncio.to_thread(killed.wait)
        saved = await _saved_page(engine, execution_id)  # nobody writes it any more
        assert saved is not None and 2 <= saved < 12, saved
        worker = _worker(db_url, plugin, tmp_path / "w2.log")
        try:
            deadline = time.monotonic() + 90  # then the log below says why
            while time.monotonic() < deadline:
                doc = await engine.get_execution(execution_id)
                if doc["runtimeStatus"] in ("Completed", "Failed"):
                    break
                await asyncio.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 30)
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

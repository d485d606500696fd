"""Kill -9 workers at random moments; every execution still completes, each step exactly once.

`pytest tests/cli/test_crash_recovery.py --cycles 1000` (or FLOWLEDGER_CRASH_CYCLES) runs
that many kill cycles (default 20); FLOWLEDGER_CRASH_SEED replays one run.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from flowledger import Engine
from flowledger.runtime.recovery import CRASH_MESSAGE
from tests.cli.clifast_forkserver import kill_hard
from tests.cli.conftest import FLOWLEDGER
from tests.cli.freezing import freeze_between_writes
from tests.cli.polls import first_step_completed, until_documents
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.both_databases]

PLUGIN = str(Path(__file__).with_name("crash_steps.py"))
WORKFLOW = """
name: crashy
variables: {{total: 0}}
steps:
  - {{id: a, type: crash.work, input: {{ms: 30, ledger: "{ledger}"}}}}
  - id: each
    type: sys.loop
    input: {{items: [1, 2, 3], concurrency: 2}}
    steps:
      - {{id: b, type: crash.work, input: {{ms: 40, ledger: "{ledger}"}}}}
      - {{id: inc, type: sys.set_variable, input: {{name: total, op: increment}}}}
  - {{id: nap, type: sys.delay, input: {{duration: 200ms}}}}
  - {{id: c, type: crash.work, input: {{ms: 30, ledger: "{ledger}"}}}}
"""


def _worker(db_url: str, log: BinaryIO, command: str = FLOWLEDGER) -> subprocess.Popen[bytes]:
    """A worker: the cold command, or ``command`` (the ``forked_command`` fixture, which a
    test kills with ``kill_hard``)."""
    return subprocess.Popen(
        [
            command,
            "worker",
            "--db",
            db_url,
            "--plugin",
            PLUGIN,
            "--lease",
            "1s",
            "--concurrency",
            "4",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


async def _enqueue(db_url: str, ledger: Path, count: int) -> list[str]:
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        workflow = engine.load_text(WORKFLOW.format(ledger=ledger))
        return [await engine.start(workflow) for _ in range(count)]


async def _documents(db_url: str, ids: list[str]) -> list[dict[str, Any]]:
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        return [await engine.get_execution(i) for i in ids]


async def _events(db_url: str, execution_id: str) -> list[dict[str, Any]]:
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        return await engine.events(execution_id)


async def _event_numbers(db_url: str, ids: list[str]) -> dict[str, tuple[list[int], int]]:
    """Each execution's event numbers, and the counter its row ended with."""
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        found = {}
        for execution_id in ids:
            row = await engine.store.get_execution(execution_id)
            assert row is not None
            events = await engine.events(execution_id)
            found[execution_id] = ([e["seq"] for e in events], int(row["event_seq"]))
        return found


def kill_workers_at_random(
    db_url: str,
    log: Path,
    rng: random.Random,
    cycles: int,
    settled: Callable[[], bool],
    command: str,
    timeout: float = 120,
) -> int:
    """Two workers; ``cycles`` times, SIGKILL one at a random moment and start another.
    Then wait (up to ``timeout``) until ``settled()``, stop the workers, return the kills.

    The workers are forks of one process that imported flowledger (``command``, the
    ``forked_command`` fixture): a cold worker spent ~0.9 s of CPU importing, so most
    blind kills hit a worker still starting, and 22 cold starts were most of the test's
    CPU. A fork is at work within milliseconds: the kills land on working workers."""
    sink = log.open("ab")
    workers = [_worker(db_url, sink, command), _worker(db_url, sink, command)]
    kills = 0
    try:
        for _ in range(cycles):
            time.sleep(rng.uniform(0.05, 0.35))
            victim = workers.pop(rng.randrange(len(workers)))
            kill_hard(victim)  # dead and reaped when it returns
            kills += 1
            workers.append(_worker(db_url, sink, command))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not settled():
            time.sleep(0.2)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        sink.close()
    return kills


def _poll(
    db_url: str, execution_id: str, done: Callable[[dict[str, Any]], bool], seconds: float = 60
) -> dict[str, Any]:
    """The execution's document once ``done`` holds for it (or the last one seen)."""
    return until_documents(db_url, PLUGIN, lambda docs: done(docs[0]), [execution_id], seconds)[0]


def test_workers_killed_at_random_moments_lose_and_duplicate_nothing(
    tmp_path: Path, db_url: str, request: pytest.FixtureRequest, forked_command: str
) -> None:
    cycles = request.config.getoption("--cycles") or int(
        os.environ.get("FLOWLEDGER_CRASH_CYCLES", "20")
    )
    seed = int(os.environ.get("FLOWLEDGER_CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"crash test seed {seed}, {cycles} cycles")
    ledger = tmp_path / "ledger.txt"
    log = tmp_path / "workers.log"
    ids = asyncio.run(_enqueue(db_url, ledger, max(12, cycles * 2)))

    def settled() -> bool:
        docs = asyncio.run(_documents(db_url, ids))
        return all(d["runtimeStatus"] in ("Completed", "Failed", "Cancelled") for d in docs)

    kills = kill_workers_at_random(db_url, log, rng, cycles, settled, forked_command)
    assert kills == cycles
    docs = asyncio.run(_documents(db_url, ids))
    failures = [
        (d["id"], d["runtimeStatus"], d["error"]) for d in docs if d["runtimeStatus"] != "Completed"
    ]
    assert not failures, f"seed {seed}: {failures}\n{log.read_text()[-3000:]}"
    effects = Counter(line.split()[0] for line in ledger.read_text().splitlines())
    for doc in docs:
        assert doc["variables"]["total"] == 3  # each increment recorded exactly once
        completed = Counter(
            (s["stepId"], tuple(s["loop"].items()))
            for s in doc["steps"].values()
            if s["status"] == "Completed"
        )
        assert all(n == 1 for n in completed.values()), completed
        assert len(completed) == 1 + 1 + 3 * 2 + 1 + 1  # a, each, (b, inc) x3, nap, c
        for step in doc["steps"].values():
            if step["status"] == "Failed":
                assert step["error"]["message"] == CRASH_MESSAGE
            if step["type"] == "crash.work" and step["status"] == "Completed":
                # At least once: the side effect of every completed step happened.
                assert effects[step["outputData"]["key"]] >= 1
    # Takeovers number events on from the events (the row's counter lags while one runs):
    # gap-free, never twice; and an ended execution's row counts them all.
    for execution_id, (seqs, counted) in asyncio.run(_event_numbers(db_url, ids)).items():
        assert seqs == list(range(1, len(seqs) + 1)), (seed, execution_id, seqs)
        assert counted == len(seqs), (seed, execution_id, counted, len(seqs))


FROZEN = """
name: frozen
steps:
  - {{id: slow, type: crash.work, input: {{ms: 2500, ledger: "{ledger}"}}}}
  - {{id: after, type: crash.work, input: {{ms: 10, ledger: "{ledger}"}}}}
"""


#: What a thawed worker logs when it finds its step taken over.
LOST_LEASE = ("lost the lease", "no longer owned")


def _wait_for_log(log: Path, phrases: tuple[str, ...], seconds: float) -> None:
    """Until the log holds one of ``phrases`` (or ``seconds`` pass: the test's own
    assertions then say what is missing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if any(phrase in text for phrase in phrases):
            return
        time.sleep(0.05)


def test_a_frozen_worker_cannot_complete_the_step_it_lost(
    tmp_path: Path, db_url: str, forked_command: str
) -> None:
    """Worker A is a cold process (SIGSTOP cannot be passed on to a fork); its rescuer
    a fork (forked_command)."""
    ledger = tmp_path / "ledger.txt"

    async def enqueue() -> str:
        async with Engine(db_url, plugins=[PLUGIN]) as engine:
            return await engine.start(engine.load_text(FROZEN.format(ledger=ledger)))

    execution_id = asyncio.run(enqueue())
    with (tmp_path / "a.log").open("ab") as log_a, (tmp_path / "b.log").open("ab") as log_b:
        frozen = _worker(db_url, log_a)
        try:
            # Wait until worker A has started the slow step, then freeze it past its lease.
            _poll(
                db_url,
                execution_id,
                lambda d: any(s["stepId"] == "slow" for s in d["steps"].values()),
            )
            freeze_between_writes(frozen, db_url)
            rescuer = _worker(db_url, log_b, forked_command)
            try:
                doc = _poll(db_url, execution_id, lambda d: d["runtimeStatus"] == "Completed")
                assert doc["runtimeStatus"] == "Completed"
                # Thaw A: its handler finishes, but its late completion must be refused.
                # Wait for it to say so (or give up after 30 s), not a fixed time.
                frozen.send_signal(signal.SIGCONT)
                _wait_for_log(tmp_path / "a.log", LOST_LEASE, seconds=30)
            finally:
                rescuer.send_signal(signal.SIGTERM)
                rescuer.wait(timeout=30)
        finally:
            frozen.send_signal(signal.SIGCONT)
            frozen.send_signal(signal.SIGTERM)
            frozen.wait(timeout=30)
    doc = asyncio.run(_documents(db_url, [execution_id]))[0]
    slow = sorted(
        (s for s in doc["steps"].values() if s["stepId"] == "slow"), key=lambda s: s["attempt"]
    )
    assert [s["status"] for s in slow] == ["Failed", "Completed"]
    assert slow[0]["error"]["message"] == CRASH_MESSAGE
    # Whichever comes first after the thaw stops it: its heartbeat finding the lease gone,
    # or the fencing epoch refusing its commit.
    frozen_log = (tmp_path / "a.log").read_text()
    assert any(words in frozen_log for words in LOST_LEASE), frozen_log[-3000:]
    events = asyncio.run(_events(db_url, execution_id))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_a_killed_run_is_finished_by_a_worker(
    tmp_path: Path, db_url: str, forked_command: str
) -> None:
    ledger = tmp_path / "ledger.txt"
    definition = _work_nap_work(tmp_path, "two", ledger, "2s")
    run = subprocess.Popen(
        [forked_command, "run", str(definition), "--db", db_url, "--plugin", PLUGIN, "--json"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "FLOWLEDGER_LEASE": "2s"},  # so its lease lapses soon after the kill
    )  # fmt: skip
    try:
        until_documents(db_url, PLUGIN, first_step_completed, seconds=30)
    finally:
        kill_hard(run)

    async def listed() -> list[str]:
        async with Engine(db_url, plugins=[PLUGIN]) as engine:
            return [d["id"] for d in await engine.list_executions()]

    (execution_id,) = asyncio.run(listed())
    with (tmp_path / "w.log").open("ab") as log:
        worker = _worker(db_url, log, forked_command)
        try:
            doc = _poll(db_url, execution_id, lambda d: d["runtimeStatus"] == "Completed")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    assert doc["runtimeStatus"] == "Completed"
    first = [s for s in doc["steps"].values() if s["stepId"] == "first"]
    assert [s["status"] for s in first] == ["Completed"]  # not re-run
    nap = [s for s in doc["steps"].values() if s["stepId"] == "nap"]
    assert [(s["attempt"], s["status"]) for s in nap] == [(1, "Completed")]  # the timer survived


def test_the_next_run_finishes_what_a_killed_run_left(
    tmp_path: Path, db_url: str, forked_command: str
) -> None:
    ledger = tmp_path / "ledger.txt"
    definition = _work_nap_work(tmp_path, "again", ledger, "1s")
    command = [forked_command, "run", str(definition), "--db", db_url, "--plugin", PLUGIN, "--json"]
    killed = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # Kill it while it sleeps: after 'first' is recorded complete (not merely after its
        # side effect, which a busy machine may record a moment later).
        until_documents(db_url, PLUGIN, first_step_completed, seconds=30)
    finally:
        kill_hard(killed)
    # Its lease (30 s) has not lapsed, but its process is gone: the next run takes over at once
    # (--new: it finishes that one, then runs its own; without, it resumes it: test_run_resume).
    again = subprocess.run(
        [*command, "--new"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert again.returncode == 0, again.stderr
    assert "left unfinished by a stopped run" in again.stderr
    docs = asyncio.run(_all_documents(db_url))
    assert [d["runtimeStatus"] for d in docs] == ["Completed", "Completed"]
    for doc in docs:
        first = [s for s in doc["steps"].values() if s["stepId"] == "first"]
        assert [s["status"] for s in first] == ["Completed"]


async def _all_documents(db_url: str) -> list[dict[str, Any]]:
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        return [await engine.get_execution(d["id"]) for d in await engine.list_executions()]


def _work_nap_work(tmp_path: Path, name: str, ledger: Path, nap: str) -> Path:
    """A definition file: a side effect, a durable delay, another side effect."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nsteps:\n"
        f"  - {{id: first, type: crash.work, input: {{ms: 10, ledger: '{ledger}'}}}}\n"
        f"  - {{id: nap, type: sys.delay, input: {{duration: {nap}}}}}\n"
        f"  - {{id: last, type: crash.work, input: {{ms: 10, ledger: '{ledger}'}}}}\n"
    )
    return path

"""Worker throughput and kill-recovery latency (issue: durability and scale-out).

    .venv/bin/python bench/workers_bench.py                     # SQLite file in a temp dir
    .venv/bin/python bench/workers_bench.py --db postgresql://…  # an existing PostgreSQL
    .venv/bin/python bench/workers_bench.py --pg                # a throwaway local cluster

Throughput: N executions of a 5-step workflow are enqueued, then 1, 2 and 4
`flowledger worker` processes drain them; prints steps/s and time to drain.
Recovery: a worker is SIGKILLed while a step runs; prints the time until that
step runs again in another worker (bounded by the lease).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from flowledger import Engine
from flowledger.storage import ExecutionQuery

REPO = Path(__file__).resolve().parent.parent
FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")
PLUGIN = str(REPO / "bench" / "bench_steps.py")

FIVE_STEPS = """
name: five
steps:
  - {id: s1, type: bench.io, input: {ms: 0}}
  - {id: s2, type: bench.io, input: {ms: 0}}
  - {id: s3, type: bench.io, input: {ms: 0}}
  - {id: s4, type: bench.io, input: {ms: 0}}
  - {id: s5, type: bench.io, input: {ms: 0}}
"""
LONG_STEP = """
name: long
steps:
  - {id: slow, type: bench.io, input: {ms: 3000}}
"""


async def _enqueue(url: str, text: str, count: int) -> list[str]:
    async with Engine(url, plugins=[PLUGIN]) as engine:
        workflow = engine.load_text(text)
        return [await engine.start(workflow) for _ in range(count)]


async def _unfinished(url: str) -> int:
    async with Engine(url, plugins=[PLUGIN]) as engine:
        left = 0
        for status in ("NotStarted", "InProgress"):
            left += len(await engine.list_executions(ExecutionQuery(status=status, limit=1000)))
        return left


def _workers(url: str, count: int, lease: str) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                FLOWLEDGER,
                "worker",
                "--db",
                url,
                "--plugin",
                PLUGIN,
                "--concurrency",
                "16",
                "--lease",
                lease,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def throughput(url: str, workers: int, executions: int) -> None:
    asyncio.run(_enqueue(url, FIVE_STEPS, executions))
    start = time.perf_counter()
    procs = _workers(url, workers, "30s")
    try:
        while asyncio.run(_unfinished(url)) > 0:
            time.sleep(0.2)
    finally:
        wall = time.perf_counter() - start
        _stop(procs)
    steps = executions * 5
    print(
        f"{workers} worker(s): {executions} executions x 5 steps drained in {wall:7.2f} s "
        f"= {steps / wall:8.0f} steps/s (includes worker start-up)",
        flush=True,
    )


async def _step_starts(url: str, execution_id: str) -> list[float]:
    async with Engine(url, plugins=[PLUGIN]) as engine:
        events = await engine.events(execution_id)
    from datetime import datetime

    return [
        datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()
        for e in events
        if e["kind"] == "step.started"
    ]


def recovery(url: str, lease: str) -> None:
    (execution_id,) = asyncio.run(_enqueue(url, LONG_STEP, 1))
    victim = _workers(url, 1, lease)
    try:
        while not asyncio.run(_step_starts(url, execution_id)):
            time.sleep(0.05)
        victim[0].send_signal(signal.SIGKILL)
        killed = time.time()
        victim[0].wait()
        rescuer = _workers(url, 1, lease)
        try:
            while len(asyncio.run(_step_starts(url, execution_id))) < 2:
                time.sleep(0.05)
        finally:
            _stop(rescuer)
    finally:
        _stop(victim)
    restarted = asyncio.run(_step_starts(url, execution_id))[1]
    print(
        f"kill recovery with a {lease} lease: the step ran again {restarted - killed:5.2f} s "
        "after its worker was killed",
        flush=True,
    )


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    if args.db:
        yield args.db
        return
    if args.pg:
        sys.path.insert(0, str(REPO))
        from tests.pg import Cluster, find_bindir  # the same throwaway cluster the tests use

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL's initdb is not installed")
        cluster = Cluster(bindir, durable=True)  # real fsyncs: these are production figures
        try:
            cluster.start()
            yield cluster.url(cluster.create_database())
        finally:
            cluster.stop()
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="database URL to use (it is written to!)")
    parser.add_argument("--pg", action="store_true", help="start a throwaway PostgreSQL")
    parser.add_argument("--executions", type=int, default=5000)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    for count in [int(n) for n in args.workers.split(",")]:
        with _database(args) as url:
            throughput(url, count, args.executions)
    with _database(args) as url:
        recovery(url, "5s")


if __name__ == "__main__":
    main()

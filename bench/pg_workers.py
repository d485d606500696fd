"""PostgreSQL: how close 4 workers come to the commit ceiling of 8 connections (one run).

On a throwaway local cluster with default durability (``fsync=on``,
``synchronous_commit=on``; tests/pg.py's Cluster, started as the postgres user):

- the ceiling: 8 connections, each committing BEGIN / INSERT one row / UPDATE one row /
  COMMIT in a loop (a thread each; psycopg releases the GIL while it waits), commits/s;
- the workers: 4 ``flowledger worker`` processes (``--concurrency 16``) draining
  executions of a 5-step workflow of async no-op steps; steps/s counted in the steady
  state (between 10% and 90% of the steps done, so start-up is left out).

A step is the unit each needs a durable commit for, so the ratio is steps/s ÷ commits/s.
Rounds alternate ceiling, workers, ceiling, ... (machine load hits both alike); medians.

    export PATH=$(ls -d /usr/lib/postgresql/*/bin | tail -1):$PATH
    .venv/bin/python bench/pg_workers.py             # 3 rounds, 2,000 executions each
    .venv/bin/python bench/pg_workers.py --rounds 5 --executions 3000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg
from workers_bench import FIVE_STEPS, _enqueue, _stop, _workers

REPO = Path(__file__).resolve().parent.parent
CONNECTIONS = 8
WORKERS = 4
CEILING_SECONDS = 3.0


def commit_ceiling(url: str, connections: int = CONNECTIONS) -> float:
    """Commits/s of ``connections`` connections committing an insert + update each."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP TABLE IF EXISTS ceiling_steps, ceiling_runs")
        admin.execute(
            "CREATE TABLE ceiling_steps (id text PRIMARY KEY, run text, status text, "
            "output text, at timestamptz)"
        )
        admin.execute("CREATE TABLE ceiling_runs (id text PRIMARY KEY, seq int)")
        admin.execute("INSERT INTO ceiling_runs SELECT 'run' || g, 0 FROM generate_series(0, 31) g")
    counts = [0] * connections
    start_line = threading.Barrier(connections + 1)
    stop = threading.Event()

    def loop(index: int) -> None:
        with psycopg.connect(url) as conn:
            start_line.wait()
            n = 0
            while not stop.is_set():
                conn.execute(
                    "INSERT INTO ceiling_steps VALUES (%s, %s, 'Completed', '{}', now())",
                    (f"{index}-{n}", f"run{index}"),
                )
                conn.execute("UPDATE ceiling_runs SET seq = %s WHERE id = %s", (n, f"run{index}"))
                conn.commit()
                n += 1
            counts[index] = n

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    time.sleep(CEILING_SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def _completed_steps(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM step_executions WHERE status = 'Completed'"
        ).fetchone()
    return int(row[0]) if row else 0


def worker_rate(url: str, executions: int, workers: int = WORKERS) -> float:
    """Steps/s of ``workers`` worker processes in the steady state of draining."""
    asyncio.run(_enqueue(url, FIVE_STEPS, executions))
    total = executions * 5
    low, high = total // 10, total * 9 // 10
    procs = _workers(url, workers, "30s")
    try:
        seen = (0, time.perf_counter(), 0.0)
        window: list[tuple[int, float, float]] = []
        while seen[0] < high:
            time.sleep(0.1)
            done = _completed_steps(url)
            seen = (done, time.perf_counter(), sum(_cpu_seconds(proc.pid) for proc in procs))
            if seen[0] >= low:
                window.append(seen)
            if any(proc.poll() is not None for proc in procs):
                raise SystemExit("a worker exited early")
    finally:
        _stop(procs)
    (first, t0, cpu0), (last, t1, cpu1) = window[0], window[-1]
    cpu = (cpu1 - cpu0) / max(1, last - first)
    print(f"  workers' CPU: {cpu * 1e6:.0f} us per step in the steady state "
          f"({seen[2] / seen[0] * 1e6:.0f} with start-up)", flush=True)  # fmt: skip
    return (last - first) / (t1 - t0)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--executions", type=int, default=2000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.pg import Cluster, find_bindir  # the same throwaway cluster the tests use

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's initdb is not installed")
    cluster = Cluster(bindir, durable=True)  # fsync=on, synchronous_commit=on
    ceilings: list[float] = []
    rates: list[float] = []
    try:
        cluster.start()
        version = cluster.admin.execute("SHOW server_version").fetchone()
        for _ in range(args.rounds):
            ceilings.append(commit_ceiling(cluster.url(cluster.create_database())))
            rates.append(worker_rate(cluster.url(cluster.create_database()), args.executions))
        ceilings.append(commit_ceiling(cluster.url(cluster.create_database())))
    finally:
        cluster.stop()
    ceiling, rate = statistics.median(ceilings), statistics.median(rates)
    print(f"PostgreSQL {version[0] if version else '?'}, fsync=on, synchronous_commit=on; "
          f"{args.rounds} interleaved rounds, medians")  # fmt: skip
    print(f"commit ceiling, {CONNECTIONS} connections: {ceiling:8.0f} commits/s  "
          f"(rounds: {', '.join(f'{c:.0f}' for c in ceilings)})")  # fmt: skip
    print(f"{WORKERS} flowledger workers:            {rate:8.0f} steps/s    "
          f"(rounds: {', '.join(f'{r:.0f}' for r in rates)})")  # fmt: skip
    print(f"workers / ceiling: {rate / ceiling:.0%}  (target: at least 60%)")


if __name__ == "__main__":
    main()

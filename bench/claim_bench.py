"""What a worker's claim costs with a backlog behind a long history, on both databases.

A database holds ``--history`` finished executions and then ``--queued`` queued ones
(rows copied in SQL from one the engine made, the queued ones newer), and the store
claims 50 at a time, as a worker's turn does, through ``Store.claim_executions``: every
claim takes the 50 oldest free ones, and they end before the next claim. Printed: the
time a claim takes (median of ``--claims``), right after the rows arrived (what a
database that has not analyzed them yet plans with) and again after ``ANALYZE``.
PostgreSQL on a throwaway local cluster (tests/pg.py's), skipped when not installed.

    export PATH=$(ls -d /usr/lib/postgresql/*/bin | tail -1):$PATH
    .venv/bin/python bench/claim_bench.py                       # 200,000 finished, 20,000 queued
    .venv/bin/python bench/claim_bench.py --history 0 --queued 20000

To compare with other code, put its ``src`` first on ``PYTHONPATH``: the rows are copied
whatever columns its schema has.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flowledger import Engine, StepRegistry
from flowledger.storage import open_store
from flowledger.storage.sql import SQLStore

ONE_STEP = "name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
BATCH = 50
LEASE = timedelta(minutes=5)


async def _seed(url: str) -> None:
    """One finished and one queued execution, made by the engine: the rows to copy."""
    async with Engine(url, registry=StepRegistry.with_builtins()) as engine:
        workflow = engine.load_text(ONE_STEP)
        await engine.run(workflow)
        await engine.start(workflow)


def _fill(store: SQLStore, history: int, queued: int) -> None:
    """``history`` copies of the finished row, a day old, then ``queued`` of the queued one."""
    conn = store.conn
    sqlite = conn.dialect.name == "sqlite"
    columns = [c for c in _columns(store) if c not in ("id", "created_at")]
    listed = ", ".join(columns)
    if sqlite:
        series = (
            "(WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) "
            "SELECT x FROM g)"
        )
        new_id = "lower(hex(randomblob(16)))"
        at = "strftime('%Y-%m-%d %H:%M:%f', 'now', '{age}', '+' || g.x || ' seconds')"
    else:
        series = "(SELECT generate_series(1, {n}) AS x)"
        new_id, at = (
            "gen_random_uuid()::text",
            "now() + interval '{age}' + make_interval(secs => g.x)",
        )
    batches = (("Completed", history, "-1 day"), ("NotStarted", queued, "+0 seconds"))
    with conn.begin():
        for status, count, age in batches:
            if count:
                conn.exec_driver_sql(
                    f"INSERT INTO executions (id, created_at, {listed}) "
                    f"SELECT {new_id}, {at.format(age=age)}, {listed} FROM "
                    f"(SELECT * FROM executions WHERE runtime_status = '{status}' LIMIT 1) AS e, "
                    f"{series.format(n=count)} AS g"
                )


def _columns(store: SQLStore) -> list[str]:
    with store.conn.begin():
        result = store.conn.exec_driver_sql("SELECT * FROM executions LIMIT 0")
        return list(result.keys())


async def _claims(store: SQLStore, claims: int) -> float:
    """The median time of ``claims`` claims of ``BATCH``, in ms. Between two claims (not
    timed) what the last one won ends, as a worker would run it to its end."""
    times = []
    mark = "?" if store.conn.dialect.name == "sqlite" else "%s"
    for _ in range(claims):
        start = time.perf_counter()
        won = await store.claim_executions("bench", BATCH, LEASE)
        times.append(time.perf_counter() - start)
        assert len(won) == BATCH, len(won)
        with store.conn.begin():
            store.conn.exec_driver_sql(
                "UPDATE executions SET runtime_status = 'Completed', lease_owner = NULL "
                f"WHERE id = {mark}",
                [(execution_id,) for execution_id, _ in won],
            )
    return statistics.median(times) * 1000


async def measure(url: str, history: int, queued: int, claims: int) -> dict[str, Any]:
    await _seed(url)
    store = open_store(url)
    assert isinstance(store, SQLStore)
    await store.initialize()
    try:
        _fill(store, history, queued)
        fresh = await _claims(store, claims)
        with store.conn.begin():
            store.conn.exec_driver_sql("ANALYZE executions")
        analyzed = await _claims(store, claims)
    finally:
        await store.close()
    return {"fresh": fresh, "analyzed": analyzed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=200_000)
    parser.add_argument("--queued", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=40)
    args = parser.parse_args()
    if args.claims * 2 * BATCH > args.queued:
        raise SystemExit("--queued must hold two rounds of --claims claims of 50")
    print(f"a claim of {BATCH}: {args.history:,} finished executions, then {args.queued:,} queued")
    print(f"{'database':<12} {'before ANALYZE':>15} {'after ANALYZE':>15}")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'claims.db'}"
        found = asyncio.run(measure(url, args.history, args.queued, args.claims))
        print(f"{'SQLite':<12} {found['fresh']:>12.2f} ms {found['analyzed']:>12.2f} ms")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import Cluster, find_bindir  # the same throwaway cluster the tests use

    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL: not installed, skipped")
        return
    cluster = Cluster(bindir, durable=True)
    try:
        cluster.start()
        url = cluster.url(cluster.create_database())
        found = asyncio.run(measure(url, args.history, args.queued, args.claims))
        print(f"{'PostgreSQL':<12} {found['fresh']:>12.2f} ms {found['analyzed']:>12.2f} ms")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()

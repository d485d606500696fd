"""What a worker's claim and a prune's batch cost behind a long history, on both databases.

A database holds ``--history`` finished executions and ``--parked`` parked ones (running,
each waiting for a timer a day ahead), a day old, and then ``--queued`` queued ones (rows
copied in SQL from ones the engine made). Measured through the store, as the engine
calls it, the median of ``--claims`` calls each:

- a claim of 50 (``Store.claim_executions``, a worker's turn): it takes the 50 oldest free
  executions, and they end before the next claim;
- a prune's search for its next batch of 100 (``Store.prunable_executions``, what
  ``flowledger executions prune`` and the retention duty ask before each delete).

Each right after the rows arrived (what a database that has not analyzed them yet plans
with) and again after ``ANALYZE``. PostgreSQL on a throwaway local cluster (tests/pg.py's,
``fsync=on``), skipped when not installed.

    export PATH=$(ls -d /usr/lib/postgresql/*/bin | tail -1):$PATH
    .venv/bin/python bench/history_bench.py        # 200,000 finished, 50,000 parked, 20,000 queued
    .venv/bin/python bench/history_bench.py --history 0 --parked 0 --queued 20000

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

from flowledger import Engine, StepRegistry
from flowledger.storage import open_store
from flowledger.storage.schema import FINISHED
from flowledger.storage.sql import SQLStore
from flowledger.timeutil import utcnow

ONE_STEP = "name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
BATCH = 50
PRUNE_BATCH = 100  # flowledger executions prune's default
LEASE = timedelta(minutes=5)


async def _seed(url: str) -> None:
    """One finished and one queued execution, made by the engine: the rows to copy."""
    async with Engine(url, registry=StepRegistry.with_builtins()) as engine:
        workflow = engine.load_text(ONE_STEP)
        await engine.run(workflow)
        await engine.start(workflow)


def _fill(store: SQLStore, history: int, parked: int, queued: int) -> None:
    """``history`` copies of the finished row, a day old (ten a second); ``parked`` of the
    queued one made InProgress with a timer a day ahead (a ``sys.delay``), as old; then
    ``queued`` of the queued one, starting now."""
    conn = store.conn
    sqlite = conn.dialect.name == "sqlite"
    own = ("id", "created_at", "last_activity_at", "runtime_status", "wake_at")
    columns = [c for c in _columns(store) if c not in own]
    listed = ", ".join(columns)
    if sqlite:
        series = (
            "(WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) "
            "SELECT x FROM g)"
        )
        new_id = "lower(hex(randomblob(16)))"
        at = "strftime('%Y-%m-%d %H:%M:%f', 'now', '{age}', '+' || (g.x / 10.0) || ' seconds')"
        ahead = "strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 day')"
    else:
        series = "(SELECT generate_series(1, {n}) AS x)"
        new_id, at = (
            "gen_random_uuid()::text",
            "now() + interval '{age}' + make_interval(secs => g.x / 10.0)",
        )
        ahead = "now() + interval '1 day'"
    batches = (
        ("Completed", "Completed", history, "-1 day", "NULL"),
        ("NotStarted", "InProgress", parked, "-1 day", ahead),
        ("NotStarted", "NotStarted", queued, "+0 seconds", "NULL"),
    )
    with conn.begin():
        for source, status, count, age, wake in batches:
            if count:
                conn.exec_driver_sql(
                    "INSERT INTO executions (id, created_at, last_activity_at, runtime_status, "
                    f"wake_at, {listed}) SELECT {new_id}, {at.format(age=age)}, "
                    f"{at.format(age=age)}, '{status}', {wake}, {listed} FROM "
                    f"(SELECT * FROM executions WHERE runtime_status = '{source}' LIMIT 1) AS e, "
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


async def _prune_searches(store: SQLStore, claims: int) -> float:
    """The median time of ``claims`` searches for a prune's batch of ``PRUNE_BATCH``, in ms
    (nothing is deleted: each finds the same oldest ones)."""
    before = utcnow() - timedelta(hours=1)
    times = []
    for _ in range(claims):
        start = time.perf_counter()
        found = await store.prunable_executions(before, FINISHED, PRUNE_BATCH)
        times.append(time.perf_counter() - start)
        assert len(found) == PRUNE_BATCH, len(found)
    return statistics.median(times) * 1000


async def measure(
    url: str, history: int, parked: int, queued: int, claims: int
) -> dict[str, float]:
    await _seed(url)
    store = open_store(url)
    assert isinstance(store, SQLStore)
    await store.initialize()
    found: dict[str, float] = {}
    try:
        _fill(store, history, parked, queued)
        for when in ("fresh", "analyzed"):
            if when == "analyzed":
                with store.conn.begin():
                    store.conn.exec_driver_sql("ANALYZE executions")
            found[f"claim {when}"] = await _claims(store, claims)
            if history >= PRUNE_BATCH:
                found[f"prune {when}"] = await _prune_searches(store, claims)
    finally:
        await store.close()
    return found


def _print(database: str, found: dict[str, float]) -> None:
    labels = {"claim": f"a claim of {BATCH}", "prune": f"a prune's search ({PRUNE_BATCH})"}
    for what, label in labels.items():
        if f"{what} fresh" in found:
            fresh, analyzed = found[f"{what} fresh"], found[f"{what} analyzed"]
            print(f"{database:<11} {label:<24} {fresh:>10.2f} ms {analyzed:>10.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=200_000)
    parser.add_argument("--parked", type=int, default=50_000)
    parser.add_argument("--queued", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=40)
    args = parser.parse_args()
    if args.claims * 2 * BATCH > args.queued:
        raise SystemExit("--queued must hold two rounds of --claims claims of 50")
    print(
        f"{args.history:,} finished executions and {args.parked:,} parked, a day old, "
        f"then {args.queued:,} queued"
    )
    print(f"{'database':<11} {'what':<24} {'before ANALYZE':>13} {'after ANALYZE':>13}")
    sizes = (args.history, args.parked, args.queued, args.claims)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'history.db'}"
        _print("SQLite", asyncio.run(measure(url, *sizes)))
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
        _print("PostgreSQL", asyncio.run(measure(url, *sizes)))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()

"""The floor every engine figure is compared with: a bare SQLite WAL commit.

One commit = BEGIN IMMEDIATE, INSERT one row, UPDATE one row, COMMIT, through the sqlite3
driver on a WAL file with ``synchronous=NORMAL`` (flowledger's default setting), the rows
shaped like a step execution. Imported by the other benches so each prints the floor
measured in the same run beside its own figures.

Beside it, the floor of flowledger's own data: the statements one W1 round commits
(a chain of custom steps: the fence's read of the execution's lease epoch, the next
step's INSERT, the finished step's UPDATE, their two events; the execution's row is
not written per round, see runtime.journal), sent through the same bare sqlite3 driver
on a file with flowledger's schema. What a W1 step costs above that is the engine's
Python; what that costs above the bare commit is the schema (the step row's unique
indexes, the event journal).

    .venv/bin/python bench/floor.py
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flowledger.storage.rowparams import EVENT, STEP_INSERT, STEP_UPDATE

_ONE_STEP = "name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
# The round's statements in the engine's own column orders (storage.rowparams), so the
# floor follows the writes it stands under.
_STEP_INSERT = (
    f"INSERT INTO step_executions ({', '.join(STEP_INSERT)}) "
    f"VALUES ({', '.join('?' * len(STEP_INSERT))})"
)
_STEP_UPDATE = (
    f"UPDATE step_executions SET {', '.join(f'{c} = ?' for c in STEP_UPDATE[:-1])} WHERE id = ?"
)
#: The fence of a round that leaves the execution's row alone (storage.writes).
_FENCE = "SELECT id, lease_epoch FROM executions WHERE id = ?"
_EVENT_INSERT = (
    f"INSERT INTO execution_events ({', '.join(EVENT)}) VALUES ({', '.join('?' * len(EVENT))})"
)

_ROWS = 2000


def sqlite_commit_seconds(commits: int = _ROWS) -> float:
    """Seconds per bare commit (insert + update), the best of three runs."""
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as folder:
            best = min(best, _run(Path(folder) / "floor.db", commits))
    return best


def _run(path: Path, commits: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE steps (id TEXT PRIMARY KEY, execution_id TEXT, step_id TEXT, "
            "status TEXT, attempt INTEGER, output TEXT, started_at TEXT, completed_at TEXT)"
        )
        conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, status TEXT, seq INTEGER)")
        conn.execute("INSERT INTO runs VALUES ('run', 'Running', 0)")
        start = time.perf_counter()
        for i in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO steps VALUES (?, 'run', ?, 'Running', 1, NULL, "
                "'2026-01-01T00:00:00', NULL)",
                (f"step-{i}", f"s{i}"),
            )
            conn.execute("UPDATE runs SET seq = ?, status = 'Running' WHERE id = 'run'", (i,))
            conn.execute("COMMIT")
        return (time.perf_counter() - start) / commits
    finally:
        conn.close()


def w1_round_seconds(commits: int = _ROWS) -> float:
    """Seconds per W1 round's own SQL through the bare driver, the best of three runs."""
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "round.db"
            execution_id = asyncio.run(_one_execution(f"sqlite:///{path}"))
            best = min(best, _run_rounds(path, execution_id, commits))
    return best


async def _one_execution(url: str) -> str:
    """A flowledger database (its schema, one execution) made by the engine itself."""
    from flowledger import Engine

    async with Engine(url) as engine:
        doc = await engine.run(engine.load_text(_ONE_STEP))
    return str(doc["id"])


def _run_rounds(path: Path, execution_id: str, commits: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        at = "2026-11-29 16:31:38.895098"
        (epoch,) = conn.execute(
            "SELECT lease_epoch FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        seq = 100
        previous: str | None = None
        start = time.perf_counter()
        for i in range(commits):
            step_id = f"0192f000-0000-7000-8000-{i:012d}"  # time-ordered, as the engine's
            conn.execute("BEGIN IMMEDIATE")
            (_, held) = conn.execute(_FENCE, (execution_id,)).fetchone()
            assert held == epoch
            # STEP_INSERT's order: the keys, attempt, idempotency key and input, then
            # STEP_CHANGING (status, the five instants, suspended, output, error, state,
            # children).
            conn.execute(
                _STEP_INSERT,
                (step_id, execution_id, i + 10, f"t{i}", f"t{i}", "", "bench.noop", 1,
                 step_id.replace("-", ""), '{"value": 1}',
                 "InProgress", at, None, None, None, None, 0, None, None, None, None),
            )  # fmt: skip
            if previous is not None:
                conn.execute(
                    _STEP_UPDATE,
                    ("Completed", at, at, None, None, None, 0, '{"value": 2}', None, None, None,
                     previous),
                )  # fmt: skip
            conn.executemany(
                _EVENT_INSERT,
                [
                    (execution_id, seq + 1, at, "step.completed", previous, f"t{i}", 1,
                     "Completed", None),
                    (execution_id, seq + 2, at, "step.started", step_id, f"t{i}", 1, "Running",
                     None),
                ],
            )  # fmt: skip
            conn.execute("COMMIT")
            seq += 2
            previous = step_id
        return (time.perf_counter() - start) / commits
    finally:
        conn.close()


#: A start's two rows, each from JSON (bench only: the engine binds its columns).
_START_SQL = (
    "INSERT INTO executions SELECT * FROM json_populate_record(NULL::executions, %s)",
    "INSERT INTO execution_events SELECT * FROM json_populate_record(NULL::execution_events, %s)",
)
#: How pg_start_seconds hands each start to the database.
START_WAYS = ("through a thread", "on the calling thread", "from an event loop")


def pg_start_seconds(url: str, starts: int = 200) -> dict[str, float]:
    """Seconds per start on PostgreSQL, bare: a start's two rows (an execution the engine
    made, and its event, copied under new ids) inserted and committed durably in one
    pipeline through psycopg, one start after another, in each of START_WAYS: handed to a
    thread and waited for (a lane, as DBOS's ``asyncio.to_thread``); on the calling thread
    (blocking it); on psycopg's asyncio connection, from the event loop (as flowledger's
    starts, storage.pgstarts). W3 starts its executions one at a time, so this times its
    starts alone: the least any engine pays for them."""
    import json
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    execution_id = asyncio.run(_one_execution(url))
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        (row,) = conn.execute(
            "SELECT row_to_json(e)::text FROM executions e WHERE id = %s", (execution_id,)
        ).fetchone() or ("",)
        (event,) = conn.execute(
            "SELECT row_to_json(v)::text FROM execution_events v WHERE execution_id = %s "
            "ORDER BY seq LIMIT 1",
            (execution_id,),
        ).fetchone() or ("",)
        conn.commit()
        execution, first = json.loads(row), json.loads(event)

        def values() -> tuple[str, str]:
            new = str(uuid.uuid4())
            return (
                json.dumps({**execution, "id": new, "trigger_key": None}),
                json.dumps({**first, "execution_id": new}),
            )

        def start() -> None:
            with conn.pipeline():
                for sql, value in zip(_START_SQL, values(), strict=True):
                    conn.execute(sql, (value,))
                conn.commit()

        timed: dict[str, float] = {}
        with ThreadPoolExecutor(1) as thread:
            thread.submit(start).result()  # warm: the statements' plans
            timed[START_WAYS[0]] = _per_call(starts, lambda: thread.submit(start).result())
        timed[START_WAYS[1]] = _per_call(starts, start)
    timed[START_WAYS[2]] = asyncio.run(_starts_from_a_loop(plain, values, starts))
    return timed


def _per_call(calls: int, call: Callable[[], object]) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - began) / calls


async def _starts_from_a_loop(url: str, values: Callable[[], tuple[str, str]], n: int) -> float:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:

        async def start() -> None:
            async with conn.pipeline():
                for sql, value in zip(_START_SQL, values(), strict=True):
                    await conn.execute(sql, (value,))
                await conn.commit()

        await start()  # warm
        began = time.perf_counter()
        for _ in range(n):
            await start()
        return (time.perf_counter() - began) / n


def main() -> None:
    print(f"bare SQLite WAL commit (insert + update): {sqlite_commit_seconds() * 1e6:.1f} us")
    print(f"a W1 round's own SQL, bare driver:       {w1_round_seconds() * 1e6:.1f} us")


if __name__ == "__main__":
    main()

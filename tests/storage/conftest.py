"""Storage fixtures: an open store on a fresh database, and rows to put in it."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flowledger.storage import Row, Store, open_store
from flowledger.storage.postgres import PostgresStore
from flowledger.storage.sql import SQLStore
from tests.pg import BACKENDS, Cluster

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SQLStore]:
    opened = open_store(db_url)
    assert isinstance(opened, SQLStore)
    await opened.initialize()
    yield opened
    await opened.close()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    """An open PostgresStore (for PostgreSQL-only tests)."""
    store = PostgresStore(pg_url)
    await store.initialize()
    yield store
    await store.close()


def admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection of the test's own to a PostgreSQL test database."""
    return psycopg.connect(url, autocommit=True)


def backends(url: str, application: str) -> list[int]:
    """The process ids of the connections named ``application`` to this test's database."""
    with admin(url) as conn:
        found = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND datname = current_database()",
            (application,),
        ).fetchall()
    return [int(str(pid)) for (pid,) in found]


def none_left(url: str, application: str) -> bool:
    """True once no connection named ``application`` is open (a closed one's backend
    exits a moment after the client let it go)."""
    deadline = time.monotonic() + 10
    while backends(url, application):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def join_all(threads: Sequence[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


def execution_row(**overrides: Any) -> Row:
    row: Row = {
        "id": str(uuid.uuid4()),
        "correlation_id": "c",
        "parent_id": None,
        "root_id": None,
        "workflow_version_id": "v",
        "workflow_name": "wf",
        "workflow_version": 1,
        "runtime_status": "NotStarted",
        "current_state_name": None,
        "created_at": T0,
        "started_at": None,
        "completed_at": None,
        "failed_at": None,
        "last_activity_at": T0,
        "created_by": "test",
        "context": "{}",
        "trigger": "{}",
        "variables": "{}",
        "output": None,
        "error": None,
        "event_seq": 0,
        "format_version": 1,
    }
    return {**row, **overrides}


def step_row(execution_id: str, **overrides: Any) -> Row:
    """Every column: the commit fast path inserts whole rows."""
    row: Row = {
        "id": str(uuid.uuid4()),
        "execution_id": execution_id,
        "seq": 1,
        "step_id": "a",
        "step_path": "a",
        "loop_key": "",
        "type": "sys.no_action",
        "status": "InProgress",
        "attempt": 1,
        "started_at": T0,
        "completed_at": None,
        "failed_at": None,
        "due_at": None,
        "wake_at": None,
        "suspended": 0,
        "input": "{}",
        "output": None,
        "error": None,
        "state": None,
        "idempotency_key": uuid.uuid4().hex,
        "children": None,
    }
    return {**row, **overrides}


def event_row(execution_id: str, seq: int, **overrides: Any) -> Row:
    row: Row = {
        "execution_id": execution_id,
        "seq": seq,
        "at": T0,
        "kind": "StepCompleted",
        "step_execution_id": None,
        "step_id": None,
        "attempt": None,
        "status": None,
        "detail": None,
    }
    return {**row, **overrides}


async def new_execution(store: Store, **overrides: Any) -> str:
    row = execution_row(**overrides)
    await store.create_execution(row, [])
    return str(row["id"])


async def leased_execution(
    store: Store, owner: str = "w", lease: timedelta = timedelta(minutes=5)
) -> tuple[str, int]:
    """A new execution leased to ``owner``: its id and lease epoch."""
    execution_id = await new_execution(store)
    epoch = await store.acquire_lease(execution_id, owner, lease)
    assert epoch is not None
    return execution_id, epoch


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Make empty databases (no schema at all) on one backend: call it for each one."""
    made: list[str] = []
    cluster: Cluster | None = None
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")

    def make() -> str:
        if cluster is None:
            made.append(f"sqlite:///{tmp_path / f'empty{len(made)}.db'}")
        else:
            made.append(cluster.url(cluster.create_database("template0")))
        return made[-1]

    yield make
    if cluster is not None:
        for url in made:
            cluster.drop_database(url.rsplit("/", 1)[1])


def walks_in_order(plan: str, *indexes: str) -> bool:
    """The plan walks each of ``indexes`` (once per time named) in its order: nothing read
    another way, only the last few rows sorted (SQLite's one temporary B-tree, PostgreSQL's
    sort of the union, if any), and nothing compiled (PostgreSQL's JIT: a discouraged
    plan's cost is over its threshold)."""
    postgresql = "Scan" in plan  # SQLite's EXPLAIN says SCAN and SEARCH
    for index in set(indexes):
        if postgresql:
            # A subplan's lookup of one row by its id (pruning's ``root`` alias) may take
            # any index on a table the planner thinks tiny (no statistics yet): not a walk.
            walk = rf"Index Scan using {re.escape(index)} on \S+(?: (\S+))?  \("
            walks = sum(1 for alias in re.findall(walk, plan) if not alias.startswith("root"))
        else:
            walks = f"{plan} ".count(f"USING INDEX {index} ")
        if walks != indexes.count(index):
            return False
    if postgresql:
        other = ("Bitmap", "Seq Scan on executions", "ix_executions_created", "JIT")
        return not any(o in plan for o in other)
    return plan.count("TEMP B-TREE") == 1

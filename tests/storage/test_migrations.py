"""Alembic migrations: the chain builds exactly what schema.py declares, on both databases."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, bindparam, insert, inspect, text, update

from flowledger.definition.compiler import load_workflow_text
from flowledger.errors import StorageError
from flowledger.steps.registry import StepRegistry
from flowledger.storage import migrations, open_store
from flowledger.storage.fastpath import timestamp_processor
from flowledger.storage.schema import (
    SCHEMA_VERSION,
    UTCDateTime,
    executions,
    meta,
    metadata,
    workflow_versions,
    workflows,
)
from flowledger.storage.schema_jobs import job_runs
from flowledger.storage.schema_tokens import api_tokens
from flowledger.storage.sql import SQLStore
from flowledger.templates import TemplateEngine
from tests.pg import BACKENDS, Cluster
from tests.storage.conftest import T0, execution_row, join_all


class Databases:
    """Databases of one test on one backend: ``()`` one with no schema at all, ``at(R)``
    one already migrated to revision R (the revision tests' starting point)."""

    def __init__(self, folder: Path, cluster: Cluster | None, revisions: Path) -> None:
        self.folder, self.cluster, self.revisions = folder, cluster, revisions
        self.lent: list[str] = []

    def __call__(self) -> str:
        if self.cluster is None:
            self.lent.append(str(self.folder / f"empty{len(self.lent)}.db"))
            return f"sqlite:///{self.lent[-1]}"
        # Lent blank from the process's pool (tests/pg.py): a copy of template0 and its
        # drop cost a checkpoint each, 1-3 s a test on a loaded machine.
        self.lent.append(self.cluster.lend_blank_database())
        return self.cluster.url(self.lent[-1])

    async def at(self, revision: str) -> str:
        if self.cluster is None:
            # A copy of this process's file at that revision: the same bytes as migrating
            # an empty file there, without paying revisions 0001.. again in every test.
            copy = self.folder / f"at{revision}-{len(self.lent)}.db"
            shutil.copyfile(await _sqlite_at(self.revisions, revision), copy)
            self.lent.append(str(copy))
            return f"sqlite:///{copy}"
        url = self()
        await _upgrade(url, revision)
        return url

    def give_back(self) -> None:
        if self.cluster is not None:
            for name in self.lent:
                self.cluster.give_back_blank(name)


async def _upgrade(url: str, revision: str) -> None:
    store = sql_store(url)
    try:
        with store.conn.begin():
            migrations.upgrade(store.conn, revision)
    finally:
        await store.close()


#: SQLite files at each revision a test asked for, made once per process.
_SQLITE_AT: dict[str, Path] = {}


async def _sqlite_at(folder: Path, revision: str) -> Path:
    if revision not in _SQLITE_AT:
        path = folder / f"{revision}.db"
        below = [r for r in _SQLITE_AT if r < revision]
        if below:  # from the nearest revision made already: Alembic goes on from there
            shutil.copyfile(_SQLITE_AT[max(below)], path)
        await _upgrade(f"sqlite:///{path}", revision)
        _SQLITE_AT[revision] = path
    return _SQLITE_AT[revision]


MakeDb = Databases


@pytest.fixture(scope="session")
def sqlite_revisions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this process keeps its SQLite files at each revision (_SQLITE_AT)."""
    return tmp_path_factory.mktemp("sqlite-revisions")


@pytest.fixture(params=BACKENDS)
def empty_db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_revisions: Path
) -> Iterator[Databases]:
    """This module's own (tests/storage/conftest.py's makes and drops a database each)."""
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgresql" else None
    databases = Databases(tmp_path, cluster, sqlite_revisions)
    yield databases
    databases.give_back()


ALL_REVISIONS = [f"{n:04d}" for n in range(1, 18)]
#: The executions columns revision 0001 created.
LEGACY_EXECUTION_COLUMNS = {c.name for c in executions.columns} - {
    "depth",
    "rerun_of",
    "job_run_id",
    "trigger_key",
    "signals_sent",
    "signals_taken",
    "descendants",
}


def sql_store(url: str) -> SQLStore:
    store = open_store(url)
    assert isinstance(store, SQLStore)
    return store


def snapshot(conn: Connection) -> dict[str, Any]:
    """Everything about the schema that queries and constraints depend on."""
    insp = inspect(conn)

    def options(index: Any) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, str(v)) for k, v in index.get("dialect_options", {}).items()))

    # One query per kind for all tables (get_multi_*), not one per table: on PostgreSQL
    # the per-table reflection of two databases took seconds.
    columns, primary_keys = insp.get_multi_columns(), insp.get_multi_pk_constraint()
    indexes, uniques = insp.get_multi_indexes(), insp.get_multi_unique_constraints()
    foreign_keys = insp.get_multi_foreign_keys()
    tables: dict[str, Any] = {}
    for key in sorted(columns, key=lambda key: key[1]):
        table = key[1]
        if table == migrations.VERSION_TABLE:
            continue
        tables[table] = {
            "columns": [
                (c["name"], c["type"].compile(conn.dialect), c["nullable"], c["default"])
                for c in columns[key]
            ],
            "primary_key": primary_keys[key]["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]), options(i))
                for i in indexes[key]
            ),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in uniques[key]),
            "foreign_keys": foreign_keys[key],
        }
    return tables


async def test_migrations_build_exactly_the_declared_schema(empty_db: MakeDb) -> None:
    migrated, created = sql_store(empty_db()), sql_store(empty_db())
    try:
        with migrated.conn.begin():  # every revision, also on SQLite (see test_new_file.py)
            assert migrations.upgrade(migrated.conn, replay=True) == ALL_REVISIONS
        with created.conn.begin():
            metadata.create_all(created.conn)
        with migrated.conn.begin(), created.conn.begin():
            ours, declared = snapshot(migrated.conn), snapshot(created.conn)
        assert ours == declared
        assert set(ours) == {t.name for t in metadata.sorted_tables}
        # The guard against double completions made it, partial WHERE and all.
        [guard] = [
            i for i in ours["step_executions"]["indexes"] if i[0] == "uq_step_executions_completed"
        ]
        assert guard[1:3] == (("execution_id", "step_path", "loop_key"), True)
        assert "Completed" in str(guard[3])
    finally:
        await migrated.close()
        await created.close()


def test_head_is_the_newest_revision_script() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("path_separator", "os")
    assert ScriptDirectory.from_config(config).get_heads() == [migrations.HEAD]


async def test_first_use_migrates_then_only_checks(empty_db: MakeDb) -> None:
    url = empty_db()
    store = sql_store(url)
    try:
        await store.initialize()
        with store.conn.begin():
            assert migrations.current_revision(store.conn) == migrations.HEAD
        await store.initialize()
        assert await store.upgrade() == []
    finally:
        await store.close()


async def test_a_database_from_before_migrations_is_adopted(empty_db: MakeDb) -> None:
    store = sql_store(empty_db())
    row = execution_row()
    try:
        with store.conn.begin():  # what the pre-Alembic initialize() left behind
            migrations.upgrade(store.conn, "0001")
            store.conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))
            store.conn.execute(insert(meta).values(key="schema_version", value=SCHEMA_VERSION))
            legacy = {k: v for k, v in row.items() if k in LEGACY_EXECUTION_COLUMNS}
            store.conn.execute(insert(executions), [legacy])
        # Stamped as revision 0001 (nothing re-created), then upgraded from there.
        assert await store.upgrade() == ALL_REVISIONS[1:]
        with store.conn.begin():
            assert migrations.current_revision(store.conn) == migrations.HEAD
        assert await store.get_execution(row["id"]) is not None
    finally:
        await store.close()


async def test_a_schema_newer_than_this_flowledger_is_refused(empty_db: MakeDb) -> None:
    url = empty_db()
    store = sql_store(url)
    try:
        await store.initialize()
        with store.conn.begin():
            store.conn.execute(update(migrations._version).values(version_num="9999"))
    finally:
        await store.close()
    newer = sql_store(url)
    try:
        with pytest.raises(StorageError, match="upgrade flowledger"):
            await newer.initialize()
    finally:
        await newer.close()


async def test_processes_starting_together_migrate_once(empty_db: MakeDb) -> None:
    url = empty_db()
    results: list[list[str] | BaseException] = []
    barrier = threading.Barrier(4, timeout=30)

    def first_use() -> None:
        async def upgrade() -> list[str]:
            store = sql_store(url)
            try:
                return await store.upgrade()
            finally:
                await store.close()

        barrier.wait()
        try:
            results.append(asyncio.run(upgrade()))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(join_all, threads)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert results.count(ALL_REVISIONS) == 1 and results.count([]) == 3


async def test_revision_0004_upgrades_a_0003_database_with_its_data(empty_db: MakeDb) -> None:
    """Pushed workflows stay pushed and enabled; step logs and disabling work after it."""
    from flowledger.storage.schema import workflow_versions, workflows
    from flowledger.storage.schema_ops import step_logs

    store = sql_store(await empty_db.at("0003"))
    row = execution_row(runtime_status="Completed")
    try:
        with store.conn.begin():
            store.conn.execute(
                insert(workflow_versions).values(
                    id="v1",
                    name="wf",
                    version=1,
                    checksum="c",
                    document="{}",
                    format_version=1,
                    created_at=row["created_at"],
                )
            )
            # As revision 0003 knew the table: no disabled_at yet.
            store.conn.execute(
                text(
                    "INSERT INTO workflows (name, version_id, pushed_at, first_pushed_at) "
                    "VALUES ('wf', 'v1', :at, :at)"
                ),
                {"at": _stored(store, row["created_at"])},
            )
            store.conn.execute(insert(executions), [row])
        assert await store.upgrade() == ALL_REVISIONS[3:]
        [pushed] = await store.pushed_workflows()
        assert pushed.version["name"] == "wf" and pushed.disabled_at is None
        assert [i for i, _ in await store.active_workflow_ids()] == [pushed.version["id"]]
        assert await store.set_workflow_disabled("wf", True) is True
        assert await store.active_workflow_ids() == []
        with store.conn.begin():
            store.conn.execute(
                insert(step_logs).values(
                    execution_id=row["id"],
                    step_execution_id="s",
                    step_id="a",
                    attempt=1,
                    at=row["created_at"],
                    level="INFO",
                    message='"hello"',
                )
            )
            assert store.conn.execute(workflows.select()).one().disabled_at is not None
        [line] = await store.get_step_logs(row["id"])
        assert line["message"] == '"hello"' and line["id"] >= 1
        assert await store.get_execution(row["id"]) is not None
    finally:
        await store.close()


async def test_revision_0006_keeps_steps_listed_in_order_through_the_constraint(
    empty_db: MakeDb,
) -> None:
    """The (execution_id, seq) index goes; an execution's steps still come back in order,
    found through the unique constraint's index (not a scan of every execution's steps)."""
    from flowledger.storage.schema import step_executions
    from tests.storage.conftest import step_row

    store = sql_store(await empty_db.at("0005"))
    row = execution_row()
    other = execution_row()
    try:
        with store.conn.begin():
            store.conn.execute(insert(executions), [row, other])
            steps = [
                step_row(row["id"], seq=seq, step_id=f"s{seq}", step_path=f"s{seq}")
                for seq in (3, 1, 2)
            ]
            steps.append(step_row(other["id"], seq=1))
            store.conn.execute(insert(step_executions), steps)
        before = {i["name"] for i in inspect(store.conn).get_indexes("step_executions")}
        store.conn.rollback()
        assert "ix_step_executions_execution" in before
        assert await store.upgrade() == ALL_REVISIONS[5:]
        after = {i["name"] for i in inspect(store.conn).get_indexes("step_executions")}
        store.conn.rollback()
        assert after == before - {"ix_step_executions_execution"}
        listed = await store.get_step_executions(row["id"])
        assert [s["seq"] for s in listed] == [1, 2, 3]
        if store.conn.dialect.name == "sqlite":
            plan = store.conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM step_executions "
                "WHERE execution_id = ? ORDER BY seq",
                (row["id"],),
            ).all()
            store.conn.rollback()
            assert any("USING INDEX" in str(line[-1]) for line in plan), plan
    finally:
        await store.close()


async def test_revision_0007_makes_three_indexes_partial_and_keeps_them_in_use(
    empty_db: MakeDb,
) -> None:
    """The parent, job-run and trigger-key indexes hold only the rows that have one, the
    key still makes a start happen once, and a lookup by value still goes through them."""
    store = sql_store(await empty_db.at("0006"))
    unset = {"trigger_key": None, "job_run_id": None}
    keyed = execution_row(**{**unset, "trigger_key": "tick:1"})
    child = execution_row(**unset, parent_id=keyed["id"])
    plain = execution_row(**unset)
    try:
        with store.conn.begin():
            store.conn.execute(insert(executions), [keyed, child, plain])
        assert await store.upgrade() == ALL_REVISIONS[6:]
        found = {i["name"]: i for i in inspect(store.conn).get_indexes("executions")}
        store.conn.rollback()
        dialect = store.conn.dialect.name
        for name, column in (
            ("ix_executions_parent", "parent_id"),
            ("ix_executions_job_run", "job_run_id"),
            ("uq_executions_trigger_key", "trigger_key"),
        ):
            where = str(found[name]["dialect_options"][f"{dialect}_where"])
            assert column in where and "IS NOT NULL" in where.upper(), (name, where)
        # The unique key still refuses a second start with the same key, and not two NULLs.
        assert await store.create_execution(execution_row(trigger_key="tick:1"), []) == keyed["id"]
        fresh = execution_row()
        assert await store.create_execution(fresh, []) == fresh["id"]
        lookups = {
            "ix_executions_parent": ("parent_id", keyed["id"]),
            "ix_executions_job_run": ("job_run_id", "job-1"),
            "uq_executions_trigger_key": ("trigger_key", "tick:1"),
        }
        for name, (column, value) in lookups.items():
            query = f"SELECT id FROM executions WHERE {column} = :v"
            with store.conn.begin():
                if dialect == "sqlite":
                    plan = store.conn.execute(text(f"EXPLAIN QUERY PLAN {query}"), {"v": value})
                else:  # a three-row table: make PostgreSQL show whether it *can* use it
                    store.conn.execute(text("SET LOCAL enable_seqscan = off"))
                    plan = store.conn.execute(text(f"EXPLAIN {query}"), {"v": value})
                lines = " ".join(str(line[-1]) for line in plan.all())
            assert name in lines, (name, lines)
    finally:
        await store.close()


async def test_revision_0008_indexes_deliveries_by_execution(empty_db: MakeDb) -> None:
    """A database of revision 0007 gets the deliveries by execution (pruning deletes an
    execution's sent deliveries with it), and its executions are still found by pruning."""
    store = sql_store(await empty_db.at("0007"))
    queued, finished = execution_row(), execution_row(runtime_status="Failed")
    try:
        with store.conn.begin():
            store.conn.execute(insert(executions), [queued, finished])
        assert await store.upgrade() == ALL_REVISIONS[7:]
        by_execution = [
            i["column_names"] for i in inspect(store.conn).get_indexes("deliveries")
            if i["name"] == "ix_deliveries_execution"
        ]  # fmt: skip
        store.conn.rollback()
        assert by_execution == [["execution_id"]]
        later = finished["last_activity_at"] + timedelta(days=1)
        assert await store.prunable_executions(later, ["Failed"], 10) == [finished["id"]]
        query = "SELECT id FROM deliveries WHERE execution_id = 'x'"
        with store.conn.begin():
            if store.conn.dialect.name == "sqlite":
                plan = store.conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")
            else:  # an empty table: make PostgreSQL show whether it *can* use it
                store.conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plan = store.conn.exec_driver_sql(f"EXPLAIN {query}")
            assert "ix_deliveries_execution" in " ".join(str(line[-1]) for line in plan)
    finally:
        await store.close()


async def test_revision_0009_adds_the_claims_indexes(empty_db: MakeDb) -> None:
    """A database of revision 0008 with executions in it gets the two partial indexes a
    claim reads (which SQLite's claim names), and a claim then takes the queued execution,
    not the parked one nor the finished one."""
    store = sql_store(await empty_db.at("0008"))
    queued = execution_row()
    parked = execution_row(runtime_status="InProgress", wake_at=T0 + timedelta(days=36500))
    finished = execution_row(runtime_status="Completed")
    try:
        with store.conn.begin():
            for row in (queued, parked, finished):  # rows of different columns
                store.conn.execute(insert(executions), [row])
        assert await store.upgrade() == ALL_REVISIONS[8:]
        found = {i["name"]: i for i in inspect(store.conn).get_indexes("executions")}
        store.conn.rollback()
        dialect = store.conn.dialect.name
        for name, columns, words in (
            ("ix_executions_in_progress", ["created_at", "id", "wake_at"], "IS NULL"),
            ("ix_executions_waking", ["wake_at"], "IS NOT NULL"),
        ):
            where = str(found[name]["dialect_options"][f"{dialect}_where"])
            assert found[name]["column_names"] == columns and words in where.upper(), where
        claimed = await store.claim_executions("w", 10, timedelta(minutes=1))
        assert [execution_id for execution_id, _ in claimed] == [queued["id"]]
    finally:
        await store.close()


async def test_revision_0010_keeps_the_source_text_of_new_versions(empty_db: MakeDb) -> None:
    """A database of revision 0009 gets ``workflow_versions.source``: its versions have
    none (their document is all there was), versions stored afterwards keep their text."""
    store = sql_store(await empty_db.at("0009"))
    old = {
        "id": "v-old",
        "name": "nightly",
        "version": 1,
        "checksum": "c1",
        "document": '{"name": "nightly"}',
        "format_version": 1,
        "created_at": _stored(store, T0),
    }
    try:
        with store.conn.begin():
            store.conn.execute(text(
                "INSERT INTO workflow_versions (id, name, version, checksum, document, "
                "format_version, created_at) VALUES (:id, :name, :version, :checksum, "
                ":document, :format_version, :created_at)"
            ), old)  # fmt: skip
        assert await store.upgrade() == ALL_REVISIONS[9:]
        stored = await store.get_workflow_version("v-old")
        assert stored is not None and stored.source is None
        written = "# nightly, as written\nname: nightly\n"
        new = await store.save_workflow_version("nightly", "c2", '{"name": "nightly"}', 1, written)
        again = await store.save_workflow_version("nightly", "c2", "{}", 1, "# other\n")
        assert new.source == written and again.id == new.id and again.source == written
        read = await store.get_workflow_version(new.id)
        assert read is not None and read.source == written
    finally:
        await store.close()


async def test_revision_0011_counts_descendants_from_zero(empty_db: MakeDb) -> None:
    """A database of revision 0010 gets ``executions.descendants``: its executions start
    with none counted, and a root's reservations add up to its budget, not past it."""
    store = sql_store(await empty_db.at("0010"))
    root = execution_row()
    try:
        with store.conn.begin():
            store.conn.execute(insert(executions).values(
                {k: v for k, v in root.items() if k in LEGACY_EXECUTION_COLUMNS | {"depth"}}
            ))  # fmt: skip
        assert await store.upgrade() == ALL_REVISIONS[10:]
        assert await store.reserve_descendants(root["id"], 6, 10) == 6
        assert await store.reserve_descendants(root["id"], 5, 10) is None  # 11: refused whole
        assert await store.reserve_descendants(root["id"], 4, 10) == 10
        assert await store.reserve_descendants("gone", 4, 10) == 4  # a pruned root: no count
    finally:
        await store.close()


async def test_revision_0012_indexes_the_unfinished_schedule_executions(
    empty_db: MakeDb,
) -> None:
    """A database of revision 0011 gets the partial index a schedule's overlap check
    reads, holding the unfinished executions its ticks started that were there before."""
    store = sql_store(await empty_db.at("0011"))
    key = "schedule:wf:0:2026-01-01T00:00:00.000Z"
    running = execution_row(trigger_key=key, runtime_status="InProgress")
    ended = execution_row(trigger_key=key + "x", runtime_status="Completed")
    try:
        with store.conn.begin():
            store.conn.execute(insert(executions), [running, ended])
        assert await store.upgrade() == ["0012", "0013", "0014", "0015", "0016", "0017"]
        found = {i["name"]: i for i in inspect(store.conn).get_indexes("executions")}
        store.conn.rollback()
        index = found["ix_executions_unfinished_schedule"]
        where = str(index["dialect_options"][f"{store.conn.dialect.name}_where"])
        assert index["column_names"] == ["workflow_name"] and "schedule:" in where, where
        assert await store.unfinished_ticks("wf", "schedule:wf:0:") == [(running["id"], key)]
    finally:
        await store.close()


async def test_revision_0013_counts_skipped_ticks_from_zero(empty_db: MakeDb) -> None:
    """A schedule's progress recorded at revision 0012 is kept, with no tick skipped yet."""
    store = sql_store(await empty_db.at("0012"))
    when = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    try:
        with store.conn.begin():
            insert_index_state(store.conn, "wf", 0, "* * * * *", when)
        with store.conn.begin():  # read as of 0013: 0016 drops a row of no pushed workflow
            assert migrations.upgrade(store.conn, "0013") == ["0013"]
            query = "SELECT skipped_ticks, last_skipped_tick, last_tick FROM schedule_states"
            [(skipped, last_skipped, last_tick)] = store.conn.execute(text(query)).all()
        assert (skipped, last_skipped) == (0, None) and last_tick is not None
    finally:
        await store.close()


async def test_revision_0014_keys_job_runs_once_and_keeps_the_old_ones(empty_db: MakeDb) -> None:
    """Job runs stored at revision 0013 are kept, with no key; from 0014 a key is taken
    by one job run only (POST /job-runs with an Idempotency-Key)."""
    store = sql_store(await empty_db.at("0013"))
    row: dict[str, Any] = {
        "id": "j-old",
        "name": "nightly",
        "status": "Completed",
        "continue_on_failure": False,
        "items": "[]",
        "format_version": 1,
        "created_at": T0,
        "created_by": "python",
    }
    try:
        with store.conn.begin():
            store.conn.execute(insert(job_runs), [row])
        assert await store.upgrade() == ["0014", "0015", "0016", "0017"]
        old = await store.get_job_run("j-old")
        assert old is not None and old["idempotency_key"] is None
        keyed = {**row, "name": "keyed", "status": "NotStarted", "idempotency_key": "k"}
        assert await store.create_job_run({**keyed, "id": "j-1"}) == "j-1"
        assert await store.create_job_run({**keyed, "id": "j-2"}) == "j-1"  # nothing written
        assert await store.create_job_run({**row, "id": "j-3"}) == "j-3"  # no key: no limit
        assert await store.get_job_run("j-2") is None
    finally:
        await store.close()


async def test_revision_0015_keeps_the_tokens_made_before_without_expiry(
    empty_db: MakeDb,
) -> None:
    """Tokens stored at revision 0014 keep working, expiring never."""
    store = sql_store(await empty_db.at("0014"))
    row = {"id": "t-1", "name": "ops", "role": "admin", "secret_hash": "h" * 64,
           "created_at": T0}  # fmt: skip
    try:
        with store.conn.begin():
            store.conn.execute(insert(api_tokens), [row])
        assert await store.upgrade() == ["0015", "0016", "0017"]
        found = await store.find_api_token("h" * 64)
        assert found is not None and found["expires_at"] is None
    finally:
        await store.close()


async def test_revision_0017_keeps_the_tokens_made_before_with_no_creator(
    empty_db: MakeDb,
) -> None:
    """Tokens stored at revision 0016 keep working and are listed with no creator (it was
    never recorded); a token made after records its own."""
    store = sql_store(await empty_db.at("0016"))
    row = {"id": "t-1", "name": "ops", "role": "admin", "secret_hash": "h" * 64,
           "created_at": T0}  # fmt: skip
    try:
        with store.conn.begin():
            store.conn.execute(insert(api_tokens), [row])
        assert await store.upgrade() == ["0017"]
        found = await store.find_api_token("h" * 64)
        assert found is not None and found["created_by"] is None
        made = {**row, "id": "t-2", "name": "ci", "secret_hash": "k" * 64, "created_by": "cli:ada"}
        assert await store.create_api_token(made)
        listed = await store.list_api_tokens()
        assert [(t["name"], t["created_by"]) for t in listed] == [("ci", "cli:ada"), ("ops", None)]
    finally:
        await store.close()


def insert_index_state(
    conn: Connection, workflow: str, index: int, cron: str, when: datetime, skipped: int = 0
) -> None:
    """A schedule_states row as revisions 0002 to 0015 keyed it: by trigger index (with
    ``skipped`` ticks, the last at ``when``, from 0013 on)."""
    columns = "workflow_name, trigger_index, cron, timezone, last_tick, updated_at"
    values = ":w, :i, :c, 'UTC', :t, :t"
    if skipped:
        columns, values = f"{columns}, skipped_ticks, last_skipped_tick", f"{values}, :n, :t"
    statement = text(f"INSERT INTO schedule_states ({columns}) VALUES ({values})")
    conn.execute(
        statement.bindparams(bindparam("t", type_=UTCDateTime())),
        {"w": workflow, "i": index, "c": cron, "t": when, "n": skipped},
    )


#: Version 2 of a workflow with three schedules, the third like the first; version 1 had
#: the second alone, first in its list.
MOVED_V1 = """
name: wf
triggers:
  - {type: schedule, cron: "0 * * * *", input: {who: b}}
steps: [{id: a, type: sys.no_action}]
"""
MOVED_V2 = """
name: wf
triggers:
  - {type: function}
  - {type: schedule, cron: "*/5 * * * *", input: {who: a}}
  - {type: schedule, cron: "0  *  * * *", input: {who: b}, catch_up: all}
  - {type: schedule, cron: "*/5 * * * *", input: {who: a}, overlap: skip}
steps: [{id: a, type: sys.no_action}]
"""


async def test_revision_0016_keys_schedules_by_content_and_keeps_their_progress(
    empty_db: MakeDb,
) -> None:
    """Schedule progress and tick keys were keyed by the trigger's index, which a push
    that moves triggers gives to another. From 0016 they are keyed by the schedule's
    identity, the one the definition code gives it: each row of the live version keeps
    its progress, a row no schedule reads is dropped, and each tick's execution gets the
    key its own version's trigger has now (so no backfill starts it again)."""

    def ids(text: str) -> tuple[dict[int, str], str]:
        compiled = load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine())
        found = {t.index: t.schedule_id for t in compiled.triggers if t.schedule_id}
        return found, json.dumps(compiled.document)

    (old_ids, old_doc), (new_ids, new_doc) = ids(MOVED_V1), ids(MOVED_V2)
    assert new_ids[3] == new_ids[1] + "-2" and new_ids[2] == old_ids[0]  # spaces aside
    version = {"name": "wf", "format_version": 1, "created_at": T0}
    tick = "2026-01-01T10:00:00.000Z"

    def ticked(version_id: str, key: str) -> dict[str, Any]:
        return execution_row(workflow_version_id=version_id, trigger_key=key)

    rows = {
        "v1_b": ticked("v1", f"schedule:wf:0:{tick}"),
        "v2_b": ticked("v2", f"schedule:wf:2:{tick}"),  # the same tick again (the old bug)
        "v2_a": ticked("v2", f"schedule:wf:1:{tick}"),
        "v2_a2": ticked("v2", f"schedule:wf:3:{tick}"),
        "v2_function": ticked("v2", "schedule:wf:0:2026-01-01T11:00:00.000Z"),  # no schedule
        "entity": ticked("v2", "entity:e1:wf"),
    }
    store = sql_store(await empty_db.at("0015"))
    try:
        with store.conn.begin():
            store.conn.execute(insert(workflow_versions), [
                {**version, "id": "v1", "version": 1, "checksum": "c1", "document": old_doc},
                {**version, "id": "v2", "version": 2, "checksum": "c2", "document": new_doc},
            ])  # fmt: skip
            store.conn.execute(
                insert(workflows).values(name="wf", version_id="v2", pushed_at=T0,
                                         first_pushed_at=T0)
            )  # fmt: skip
            for index, minutes in ((1, 5), (2, 60), (3, 10), (7, 1)):
                when = T0 + timedelta(minutes=minutes)
                insert_index_state(store.conn, "wf", index, "* * * * *", when, skipped=index)
            insert_index_state(store.conn, "gone", 0, "* * * * *", T0)  # un-pushed since
            store.conn.execute(insert(executions), list(rows.values()))
        assert await store.upgrade() == ["0016", "0017"]
        states = {s.trigger_id: s for s in await store.schedule_states()}
        assert set(states) == {new_ids[1], new_ids[2], new_ids[3]}
        for index, minutes in ((1, 5), (2, 60), (3, 10)):
            state = states[new_ids[index]]
            assert state.workflow_name == "wf" and state.cron == "* * * * *"
            assert state.last_tick == T0 + timedelta(minutes=minutes)
            assert (state.skipped_ticks, state.last_skipped_tick) == (index, state.last_tick)
        with store.reading() as conn:
            keys = dict(conn.execute(text("SELECT id, trigger_key FROM executions")).all())
        found = {name: keys[row["id"]] for name, row in rows.items()}
        b_key = f"schedule:wf:{new_ids[2]}:{tick}"
        # v1's b and v2's b are one schedule: one of the two ticks keeps its old key
        assert sorted([found["v1_b"], found["v2_b"]]) in (
            sorted([b_key, rows["v1_b"]["trigger_key"]]),
            sorted([b_key, rows["v2_b"]["trigger_key"]]),
        )
        assert found["v2_a"] == f"schedule:wf:{new_ids[1]}:{tick}"
        assert found["v2_a2"] == f"schedule:wf:{new_ids[3]}:{tick}"
        assert found["v2_function"] == rows["v2_function"]["trigger_key"]
        assert found["entity"] == "entity:e1:wf"
        assert await store.unfinished_ticks("wf", f"schedule:wf:{new_ids[1]}:") == [
            (rows["v2_a"]["id"], found["v2_a"])
        ]
    finally:
        await store.close()


def _stored(store: SQLStore, at: datetime) -> Any:
    """``at`` as a timestamp column stores it, for a raw ``text()`` insert: the text itself
    on SQLite (sqlite3's default datetime adapter is deprecated since Python 3.12)."""
    return timestamp_processor(store.conn.dialect)(at)

"""Versioned schema changes (Alembic), for SQLite and PostgreSQL alike.

Alembic's version table is the one record of which schema a database has; it
replaced the ``schema_version`` row of ``flowledger_meta``. Stores apply pending
revisions on first use and on ``flowledger db upgrade``, always inside the
caller's transaction, so a failed upgrade leaves the database as it was.

Adding a table (or columns) today takes four steps:

1. Declare it in the ``schema_<part>.py`` module of the part it belongs to
   (``schema.py`` holds the core tables: workflow versions, executions, step
   executions, events, signals; ``schema_entities.py``, ``schema_jobs.py``,
   ``schema_schedules.py``, ``schema_artifacts.py`` the others), on the shared
   ``meta``; a new part gets a new ``schema_<part>.py`` imported by ``schema.py``.
2. Write the change as a frozen copy in ``parts/vNNNN_<part>.py`` (plain
   ``op.create_table``/``op.add_column`` calls, never importing ``schema*.py``: a
   migration must build the schema of its day forever, whatever the models say later).
3. Add ``versions/vNNNN_<what>.py`` whose ``down_revision`` is the current ``HEAD``
   and whose ``upgrade()`` calls the parts, then bump ``HEAD`` below (``SCHEMA_VERSION``
   in ``schema.py`` stays 1: it only names the pre-Alembic schema).
4. Run ``tests/storage/test_migrations.py``: it proves, on both databases, that
   migrating an empty database gives exactly what ``create_all`` on ``meta`` gives.

The SQL that reads and writes the table goes in a ``SQL<Part>Store`` mixin next to
it (``entities.py``, ``jobs.py``, ...), whose verbs the ``Store`` interface in
``base.py`` declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    insert,
    inspect,
    select,
)

from flowledger.errors import StorageError
from flowledger.storage.schema import SCHEMA_VERSION, meta, metadata

#: The newest revision. Kept here so the every-start check never imports Alembic.
HEAD = "0017"
#: Our own name, so a database shared with an application's Alembic never collides.
VERSION_TABLE = "flowledger_schema_revision"
#: The revision equal to the schema that databases created before Alembic carry.
LEGACY_REVISION = "0001"

#: Alembic's version table, as Alembic creates it (its primary key named ``<table>_pkc``).
_version = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    found = conn.execute(select(_version.c.version_num)).scalar()
    return str(found) if found is not None else None


def revision_problem(found: str | None) -> str | None:
    """Why a process of this build must not use a database at revision ``found``, in a
    sentence; None when ``found`` is this build's ``HEAD``."""
    if found == HEAD:
        return None
    if found is None:
        return (
            "the database has no flowledger schema revision any more "
            "(emptied or replaced since this process opened it)"
        )
    if found in revisions():
        return (
            f"the database's schema is at revision {found}, older than this flowledger's "
            f"{HEAD}: upgrade the database (flowledger db upgrade)"
        )
    return (
        f"the database's schema is at revision {found}, which this flowledger (at {HEAD}) "
        "does not know: a newer flowledger migrated it; upgrade flowledger"
    )


def revisions() -> list[str]:
    """Every revision id, oldest first, read from the scripts' names (``vNNNN_what.py``)."""
    scripts = (Path(__file__).parent / "versions").glob("v[0-9][0-9][0-9][0-9]_*.py")
    return sorted(script.name[1:5] for script in scripts)


def upgrade(conn: Connection, target: str = "head", *, replay: bool = False) -> list[str]:
    """Apply revisions up to ``target`` on ``conn``, in its open transaction; return their
    ids. A new SQLite file is created at head directly unless ``replay`` (the tests' way
    to have Alembic build it)."""
    if target == "head" and not replay:
        if current_revision(conn) == HEAD:
            return []
        if _is_new_sqlite(conn):
            return _create(conn)
    # Alembic costs ~50 ms to import: only paid when there is something to do.
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    applied: list[str] = []

    def record(*, step: Any, **_: Any) -> None:
        if not step.is_stamp:
            applied.append(step.up_revision_id)

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("path_separator", "os")
    config.attributes.update(connection=conn, version_table=VERSION_TABLE, on_version_apply=record)
    current = current_revision(conn)
    if current is None and _is_legacy(conn):
        command.stamp(config, LEGACY_REVISION)
    elif current is not None:
        try:
            ScriptDirectory.from_config(config).get_revision(current)
        except CommandError as exc:
            raise StorageError(str(revision_problem(current))) from exc
    command.upgrade(config, target)
    return applied


def _is_new_sqlite(conn: Connection) -> bool:
    """A SQLite database with no tables at all: a file this start created."""
    return conn.dialect.name == "sqlite" and not inspect(conn).get_table_names()


def _create(conn: Connection) -> list[str]:
    """A new SQLite file gets the head schema straight from the declared tables, and the
    head revision stamped, without importing Alembic or replaying every revision (a
    quarter of a first ``flowledger run``): tests/storage/test_migrations.py proves the
    declared tables are exactly what the revisions build."""
    metadata.create_all(conn)
    _version.create(conn)
    conn.execute(insert(_version).values(version_num=HEAD))
    return revisions()


def _is_legacy(conn: Connection) -> bool:
    """A database created before Alembic: tables present, version in ``flowledger_meta``."""
    if not inspect(conn).has_table(meta.name):
        return False
    found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    if found is None:
        return False
    if int(found) != SCHEMA_VERSION:
        raise StorageError(f"the database has an unknown schema version {found}")
    return True

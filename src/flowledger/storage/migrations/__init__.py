"""Versioned schema changes (Alembic), for SQLite and PostgreSQL alike.

Alembic's version table is the one record of which schema a database has; it
replaced the ``schema_version`` row of ``flowledger_meta``. Stores apply pending
revisions on first use and on ``flowledger db upgrade``, always inside the
caller's transaction, so a failed upgrade leaves the database as it was.

To change the schema: edit ``schema.py``, add ``versions/vNNNN_<what>.py`` whose
``down_revision`` is the current ``HEAD``, then bump ``HEAD``.
``tests/storage/test_migrations.py`` proves the chain builds exactly what
``schema.py`` declares, on both databases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select

from flowledger.errors import StorageError
from flowledger.storage.schema import SCHEMA_VERSION, meta

#: The newest revision. Kept here so the every-start check never imports Alembic.
HEAD = "0002"
#: Our own name, so a database shared with an application's Alembic never collides.
VERSION_TABLE = "flowledger_schema_revision"
#: The revision equal to the schema that databases created before Alembic carry.
LEGACY_REVISION = "0001"

_version = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), primary_key=True))


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    found = conn.execute(select(_version.c.version_num)).scalar()
    return str(found) if found is not None else None


def upgrade(conn: Connection, target: str = "head") -> list[str]:
    """Apply revisions up to ``target`` on ``conn``, in its open transaction; return their ids."""
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
            raise StorageError(
                f"the database has schema revision {current!r}, which this version of "
                "flowledger does not know (a newer flowledger created it); upgrade flowledger"
            ) from exc
    command.upgrade(config, target)
    return applied


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

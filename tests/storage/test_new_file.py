"""A new SQLite file is created at the head schema without Alembic (cold start, issue 10):
the same schema, DDL for DDL, as replaying every revision builds; older files still migrate
through Alembic (tests/storage/test_migrations.py)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from flowledger.storage import migrations


def _ddl(path: Path) -> dict[tuple[str, str], str]:
    """Every table and index of the file with its DDL, blanks and identifier quotes dropped
    (a table Alembic rebuilt in batch mode has its name quoted)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    return {
        (kind, name): re.sub(r"\s+", " ", (sql or "").replace('"', "")).strip()
        for kind, name, sql in rows
    }


def _upgrade(path: Path, *, replay: bool) -> list[str]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            applied = migrations.upgrade(conn, replay=replay)
            assert migrations.current_revision(conn) == migrations.HEAD
        return applied
    finally:
        engine.dispose()


def test_a_new_file_gets_what_replaying_every_revision_builds(tmp_path: Path) -> None:
    replayed, created = tmp_path / "replayed.db", tmp_path / "created.db"
    assert _upgrade(replayed, replay=True) == _upgrade(created, replay=False)
    assert _ddl(created) == _ddl(replayed)
    assert ("table", migrations.VERSION_TABLE) in _ddl(created)


def test_the_revisions_listed_are_alembics_chain() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("path_separator", "os")
    chain = [s.revision for s in ScriptDirectory.from_config(config).walk_revisions()]
    assert migrations.revisions() == sorted(chain) == chain[::-1]
    assert migrations.revisions()[-1] == migrations.HEAD


def _alembic_imported_by_upgrading(path: Path) -> bool:
    """Upgrade the file in a fresh interpreter; whether that imported Alembic."""
    probe = (
        "import sys\nfrom sqlalchemy import create_engine\n"
        "from flowledger.storage import migrations\n"
        f"with create_engine('sqlite:///{path}').begin() as conn:\n"
        "    migrations.upgrade(conn)\n"
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {"True": True, "False": False}[done.stdout.strip()]


def test_creating_a_new_file_does_not_import_alembic(tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    assert _alembic_imported_by_upgrading(new) is False
    assert ("table", "executions") in _ddl(new)
    assert _alembic_imported_by_upgrading(new) is False  # up to date: one read


def test_a_file_with_other_tables_is_migrated_by_alembic(tmp_path: Path) -> None:
    """Not new: a database shared with an application's own tables."""
    shared = tmp_path / "shared.db"
    with sqlite3.connect(shared) as conn:
        conn.execute("CREATE TABLE theirs (id INTEGER PRIMARY KEY)")
    assert _alembic_imported_by_upgrading(shared) is True
    assert {("table", "theirs"), ("table", "executions")} <= set(_ddl(shared))

"""`flowledger db upgrade` on a fresh and on an up-to-date database."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.full_disk import fill, full

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases]


def test_db_upgrade_applies_migrations_to_a_fresh_file(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = cli("db", "upgrade", "--db", url)
    assert first.returncode == 0, first.stderr
    assert "applied migrations: 0001" in first.stdout
    assert "up to date" in cli("db", "upgrade", "--db", url).stdout


def test_db_upgrade_leaves_an_up_to_date_database_alone(cli: Cli, db_url: str) -> None:
    cli("db", "upgrade", "--db", db_url)  # the per-test database may come migrated already
    again = cli("db", "upgrade", "--db", db_url)
    assert again.returncode == 0, again.stderr
    assert "the database schema is up to date" in again.stdout


def test_db_upgrade_on_an_unreachable_database_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("db", "upgrade", "--db", f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_database_error_is_a_message_not_a_traceback(cli: Cli, tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "odd.db"
    assert cli("db", "upgrade", "--db", f"sqlite:///{path}").returncode == 0
    with sqlite3.connect(path) as conn:  # a schema someone changed by hand
        conn.execute("ALTER TABLE executions DROP COLUMN signals_taken")
    result = cli("executions", "list", "--db", f"sqlite:///{path}")
    assert result.returncode == 1
    assert "the database refused a query (no such column" in result.stderr
    assert "flowledger db upgrade" in result.stderr  # a schema another version may have made
    assert "Traceback" not in result.stderr


def test_a_database_locked_by_another_process_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite's own "database is locked", raised through SQLAlchemy as every command
    meets it once the busy timeout passes (here at once), is told as a held lock, not
    as a schema to upgrade."""
    import sqlite3

    import sqlalchemy
    import typer

    from flowledger.cli.common import call

    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})

    async def write() -> None:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))

    with pytest.raises(typer.Exit) as ended:
        call(write)
    holder.close()
    engine.dispose()
    assert ended.value.exit_code == 1
    said = capsys.readouterr().err
    assert "stayed locked by another process" in said and "db upgrade" not in said


def test_a_full_disk_is_not_told_to_upgrade_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A write the database refuses for want of room (SQLite's SQLITE_FULL) is no schema
    of another version: no advice to run ``db upgrade``."""
    import sqlalchemy
    import typer

    from flowledger.cli.common import call

    path = tmp_path / "full.db"
    with sqlite3.connect(path) as made:
        made.execute("CREATE TABLE flowledger_meta (key TEXT PRIMARY KEY, value TEXT)")
    made.close()
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")

    async def write() -> None:
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.text("INSERT INTO flowledger_meta VALUES ('k', :v)"), {"v": "x" * 9000}
            )

    with full(fill(path)), pytest.raises(typer.Exit) as ended:
        call(write)
    engine.dispose()
    assert ended.value.exit_code == 1
    said = capsys.readouterr().err
    assert "the database refused a query (database or disk is full)" in said
    assert "db upgrade" not in said


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only even for root (the suite runs as root in CI): immutable."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_or_folder_is_named_as_such(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    url = f"sqlite:///{folder / 'r.db'}"
    assert cli("db", "upgrade", "--db", url).returncode == 0
    for checkpointed in folder.glob("r.db-*"):
        checkpointed.unlink()  # what a copy of the file alone brings along
    with read_only(folder / "r.db"):
        found = cli("executions", "list", "--db", url)
    assert found.returncode != 0 and "the file" in found.stderr
    assert "is read-only" in found.stderr and "Traceback" not in found.stderr
    with read_only(folder):
        found = cli("executions", "list", "--db", url)
    assert found.returncode != 0 and f"the folder {folder} is read-only" in found.stderr

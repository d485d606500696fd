"""What every command shares (cli.common): the commands it prints for the user to paste."""

from __future__ import annotations

import shlex

import pytest

from flowledger.cli.common import command


def test_a_printed_command_repeats_the_db_it_was_given_quoted_for_the_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tour 24: `run … --db sqlite:////tmp/other.db` printed a `submit:` command without
    it, which, pasted, opened ./flowledger.db ("no database at …")."""
    monkeypatch.delenv("FLOWLEDGER_DB", raising=False)
    given = "sqlite:////tmp/my flows/o'clock.db"
    line = command("executions", "watch", "e1", db=given)
    assert shlex.split(line) == ["flowledger", "executions", "watch", "e1", "--db", given]


def test_the_default_database_needs_no_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLEDGER_DB", raising=False)
    assert command("worker") == "flowledger worker"
    assert command("worker", db="sqlite:///flowledger.db") == "flowledger worker"
    monkeypatch.setenv("FLOWLEDGER_DB", "sqlite:////srv/flow.db")
    assert command("worker", db="sqlite:////srv/flow.db") == "flowledger worker"  # $FLOWLEDGER_DB
    assert command("worker", db="sqlite:///flowledger.db") == (
        "flowledger worker --db sqlite:///flowledger.db"  # not what a paste would open
    )


def test_a_password_in_the_db_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLEDGER_DB", raising=False)
    line = command("worker", db="postgresql://ops:s3cret@db.internal/flows")
    assert "s3cret" not in line
    assert line == "flowledger worker --db 'postgresql://ops:***@db.internal/flows'"

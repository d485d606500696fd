"""storage.sqlpart.DriverErrors: a statement sent to the driver directly fails as one sent
through SQLAlchemy does (callers catch DBAPIError), and nothing else is touched."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DBAPIError

from flowledger.storage.sqlpart import DriverErrors


def test_a_driver_error_comes_out_as_sqlalchemys() -> None:
    conn = sqlite3.connect(":memory:")
    with pytest.raises(DBAPIError) as raised, DriverErrors(sqlite3.Error, "SELECT * FROM nowhere"):
        conn.execute("SELECT * FROM nowhere")
    assert isinstance(raised.value.orig, sqlite3.OperationalError)
    assert raised.value.statement == "SELECT * FROM nowhere"
    assert raised.value.__cause__ is raised.value.orig


def test_other_errors_and_success_pass_through() -> None:
    with pytest.raises(KeyError), DriverErrors(sqlite3.Error):
        raise KeyError("not the driver's")
    with DriverErrors(sqlite3.Error):
        found = sqlite3.connect(":memory:").execute("SELECT 1").fetchone()
    assert found == (1,)

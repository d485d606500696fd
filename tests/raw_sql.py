"""One SQL statement run straight on a test's database (SQLite file or PostgreSQL), beside
the engine: for what a test must set up that no API does, such as a lease's end moved
into the past instead of waited for (a short lease can end early on a loaded machine)."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import Any

import psycopg


def run_sql(db_url: str, sql: str, **params: Any) -> int:
    """Run ``sql`` (``:name`` parameters) in its own transaction; the rows it changed."""
    if db_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn, conn:
            return conn.execute(sql, params).rowcount
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(re.sub(r":(\w+)", r"%(\1)s", sql), params).rowcount

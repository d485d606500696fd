"""Freeze a worker (SIGSTOP) between its writes: frozen inside one, it would hold the
database's write lock (SQLite) or its rows' locks (PostgreSQL), and everyone after it
would wait for a process that never goes on, which is not what the tests that freeze a
holder are about (a live holder of a lease, not of a transaction)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time

import psycopg

#: Tries before the test gives up: a worker between two writes is idle most of the time.
TRIES = 50


def freeze_between_writes(process: subprocess.Popen[bytes], db_url: str) -> None:
    """SIGSTOP ``process`` at a moment it holds no open transaction on ``db_url``."""
    for _ in range(TRIES):
        process.send_signal(signal.SIGSTOP)
        if not _transaction_open(db_url):
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError(f"the worker was inside a transaction at each of {TRIES} freezes")


def _transaction_open(db_url: str) -> bool:
    if db_url.startswith("sqlite"):
        path = db_url.split(":///", 1)[1]
        probe = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:  # "database is locked": a writer is inside
            return True
        finally:
            probe.close()
    conninfo = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as server:
        row = server.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        ).fetchone()
    return bool(row and row[0])

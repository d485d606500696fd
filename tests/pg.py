"""A throwaway PostgreSQL cluster for one test session: initdb + pg_ctl on a loopback port.

The cluster lives in a temp folder. A small watchdog process removes it when the
session ends, however it ends (pass, failure, Ctrl-C, even SIGKILL of pytest):
it waits for its stdin to close, which only happens when this process is gone
or calls ``Cluster.stop``.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from flowledger.storage import open_store

#: The database every test database is copied from: it already has the schema.
TEMPLATE_DB = "flowledger_template"
SUPERUSER = "postgres"
#: The one role that must give a password (scram), to test what a wrong one looks like.
PASSWORD_USER = "flowledger_pw"
PASSWORD = "right-password"

# Runs in the watchdog: block until the parent is gone, then stop and remove the cluster.
_WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.read()
pg_ctl, data, root, *run_as = sys.argv[1:]
subprocess.run([*run_as, pg_ctl, "stop", "-D", data, "-m", "immediate", "-w"],
               capture_output=True, check=False)
shutil.rmtree(root, ignore_errors=True)
"""


#: ``db_url`` runs each test on both; PostgreSQL runs carry the ``postgresql`` marker.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
]


class ClusterUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed here."""


def find_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, else Debian's newest install."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(versions[-1]).parent if versions else None


def _run_as() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ClusterUnavailable(
            "running as root needs a 'postgres' OS user for initdb: useradd -r postgres"
        ) from None
    return ["runuser", "-u", SUPERUSER, "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        #: Benchmarks want real fsyncs; tests do not.
        self.durable = durable
        self.run_as = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="flowledger-pg-"))
        self.data = self.root / "data"
        self.port = 0
        if self.run_as:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        cleanup = [str(bindir / "pg_ctl"), str(self.data), str(self.root), *self.run_as]
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, *cleanup],
            stdin=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C must not kill it before it has cleaned up
        )
        self._admin: psycopg.Connection[tuple[object, ...]] | None = None
        self._lent: _Emptier | None = None
        self._idle: list[str] = []  # lent databases given back empty
        self._blank: _Blanker | None = None
        self._idle_blank: list[str] = []  # databases with no schema, given back blank

    def start(self) -> None:
        self._tool(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        hba = self.data / "pg_hba.conf"  # first matching line wins: this one before trust
        hba.write_text(f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n{hba.read_text()}")
        for _ in range(5):  # another process may take the free port before postgres binds it
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                # An odd server time zone: any naive or local-time handling shows up at once.
                "-c TimeZone=Pacific/Chatham -c max_connections=200"
            )
            if not self.durable:
                # Durability is worthless for a throwaway test cluster; speed is not.
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            log = str(self.root / "server.log")
            started = self._tool(
                "pg_ctl", "start", "-D", str(self.data), "-l", log, "-w", "-t", "60",
                "-o", options, check=False,
            )  # fmt: skip
            if started.returncode == 0:
                self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
                self._admin.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
                return
        raise RuntimeError(f"PostgreSQL did not start:\n{(self.root / 'server.log').read_text()}")

    def _tool(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.run_as, str(self.bindir / name), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{name} failed: {done.stderr or done.stdout}")
        return done

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        assert self._admin is not None, "the cluster is not started"
        return self._admin

    def create_database(self, template: str = "template0") -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        # FILE_COPY: with fsync off it copies a small database faster than WAL_LOG does.
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return name

    def lend_database(self) -> str:
        """A database with the current schema and no rows: one given back by an earlier
        test and emptied (:meth:`give_back`), else a copy of the template. A copy costs
        the server 0.2-0.5 s of CPU (8 MB of files and a checkpoint); emptying one, a few
        milliseconds."""
        if self._lent is None:
            self._lent = _Emptier(self.admin, self.url(TEMPLATE_DB))
        return self._idle.pop() if self._idle else self.create_database(TEMPLATE_DB)

    def give_back(self, name: str) -> None:
        """End a lent database's test: emptied for the next one, or dropped when the test
        changed more than rows (its schema, a function, a trigger)."""
        assert self._lent is not None
        if self._lent.empty(name, self.url(name)):
            self._idle.append(name)
        else:
            self.drop_database(name)

    def lend_blank_database(self) -> str:
        """A database with no schema at all, as a copy of template0 is: one given back by
        an earlier test and blanked (:meth:`give_back_blank`), else a new copy. A copy
        costs 0.5-2 s on a loaded machine (a checkpoint); blanking one, milliseconds."""
        if self._blank is None:
            made = self.create_database("template0")
            self._blank = _Blanker(self.admin, self.url(made))
            return made
        return self._idle_blank.pop() if self._idle_blank else self.create_database("template0")

    def give_back_blank(self, name: str) -> None:
        """End a blank database's test: blanked for the next one, or dropped when it
        cannot be made like template0 again."""
        assert self._blank is not None
        if self._blank.blank(name, self.url(name)):
            self._idle_blank.append(name)
        else:
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        # FORCE: a test that leaked a connection must not leave the database behind.
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if self._watchdog.stdin is not None:
            self._watchdog.stdin.close()
        self._watchdog.wait(timeout=60)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def session_cluster() -> Iterator[Cluster]:
    """Start a cluster with a migrated template database; skip (fail on CI) without initdb."""
    bindir = find_bindir()
    try:
        if bindir is None:
            raise ClusterUnavailable(
                "PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)"
            )
        cluster = Cluster(bindir)
    except ClusterUnavailable as exc:
        if in_ci():
            pytest.fail(f"{exc}; CI must run the PostgreSQL tests, never skip them")
        pytest.skip(str(exc))
    try:
        cluster.start()
        cluster.admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        # Fixtures may be set up while an event loop runs: migrate on a thread of its own.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, migrate(cluster.url(TEMPLATE_DB))).result()
        yield cluster
    finally:
        cluster.stop()


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the current schema."""
    store = open_store(url)
    try:
        await store.upgrade()
    finally:
        await store.close()


#: What a test may change besides rows: a lent database whose answer differs from the
#: template's is dropped, not reused.
_SHAPE = """
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
  SELECT c.relkind::text || ':' || c.relname AS item FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'f:' || p.oid::regprocedure::text FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT 't:' || tgname FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT 'n:' || nspname FROM pg_namespace
  UNION ALL SELECT 'v:' || version_num FROM flowledger_schema_revision
) shape
"""
_TABLES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND c.relname <> 'flowledger_schema_revision' ORDER BY 1
"""


def _terminate_backends(admin: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    """End every connection to database ``name`` (a test may leave some behind, with their
    locks and LISTENs) and wait until they are gone; False when they would not go."""
    # pg_terminate_backend only signals: wait until they are gone.
    for _ in range(2500):
        left = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
        if left is None or left[0] == 0:
            return True
        time.sleep(0.002)  # a backend signalled exits within milliseconds
    return False


#: Everything a blank database holds outside the system catalogs: a template0 copy's
#: answer is the public schema's name, owner and grants, and nothing else.
_BLANK_SHAPE = """
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
  SELECT 'n:' || nspname || ':' || nspowner::regrole::text || ':' || coalesce(nspacl::text, '')
         AS item FROM pg_namespace
  UNION ALL SELECT c.relkind::text || ':' || c.relname FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'f:' || p.oid::regprocedure::text FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT 'y:' || t.typname FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'e:' || extname FROM pg_extension
  UNION ALL SELECT 'd:' || array_to_string(setconfig, ',') FROM pg_db_role_setting
   WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) shape
"""
#: Back to template0's public schema (PostgreSQL 15+: owned by pg_database_owner).
_BLANK = """
DROP SCHEMA public CASCADE;
CREATE SCHEMA public AUTHORIZATION pg_database_owner;
GRANT USAGE ON SCHEMA public TO PUBLIC;
COMMENT ON SCHEMA public IS 'standard public schema';
"""


class _Blanker:
    """Takes a database a test migrated back to no schema at all, as template0 has."""

    def __init__(self, admin: psycopg.Connection[tuple[object, ...]], fresh_url: str) -> None:
        self._admin = admin
        with psycopg.connect(fresh_url, autocommit=True) as fresh:
            self._shape = fresh.execute(_BLANK_SHAPE).fetchone()

    def blank(self, name: str, url: str) -> bool:
        """Blank ``name``; False when it cannot be made like template0 (drop it instead)."""
        if not _terminate_backends(self._admin, name):
            return False
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                if conn.execute(_BLANK_SHAPE).fetchone() == self._shape:
                    return True  # nothing was made in it
                with conn.transaction():
                    conn.execute(_BLANK)
                return bool(conn.execute(_BLANK_SHAPE).fetchone() == self._shape)
        except psycopg.Error:
            return False


class _Emptier:
    """Takes a lent database back to the template's state: the template's shape, the
    template's rows (none but Alembic's version: checked once), fresh sequences."""

    def __init__(self, admin: psycopg.Connection[tuple[object, ...]], template_url: str) -> None:
        self._admin = admin
        with psycopg.connect(template_url, autocommit=True) as template:
            self._shape = template.execute(_SHAPE).fetchone()
            tables = [row[0] for row in template.execute(_TABLES)]
            seeded = [
                t for t in tables if template.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
            ]
        assert not seeded, f"the template has rows a TRUNCATE would lose: {seeded}"
        self._tables = tables
        # The shape, which tables hold rows and which sequences were used, in one look
        # (a table gone is an error: dropped then): a TRUNCATE makes new files for each
        # table and index it names (~30 ms for all of them), and a test writes to a few.
        self._probe = (
            f"SELECT ({_SHAPE}), "
            f"{', '.join(f'EXISTS (SELECT 1 FROM {t})' for t in tables)}, ARRAY("
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename)"
            " FROM pg_sequences WHERE last_value IS NOT NULL)"
        )

    def empty(self, name: str, url: str) -> bool:
        """Empty ``name``; False when it cannot be made like new (drop it instead)."""
        # The next test must not meet a lock or a LISTEN of this one.
        if not _terminate_backends(self._admin, name):
            return False
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                shape, *held, used = conn.execute(self._probe).fetchone() or ()
                if (shape,) != self._shape:
                    return False
                written = [table for table, rows in zip(self._tables, held, strict=True) if rows]
                if written:  # CASCADE: and the tables referring to them
                    conn.execute(f"TRUNCATE {', '.join(written)} CASCADE")
                for sequence in used:  # as a fresh copy's: never read
                    conn.execute(f"ALTER SEQUENCE {sequence} RESTART")
                return True
        except psycopg.Error:
            return False

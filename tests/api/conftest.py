"""Acceptance fixtures for the HTTP face: the real ``flowledger serve`` as a subprocess
on a free loopback port, driven over HTTP with httpx.

``service`` (session scope, SQLite and PostgreSQL) is one server on a fresh database with
one token per role (``service.tokens["viewer"|"operator"|"admin"]``); every test module
shares it, and tests use names of their own. ``launch`` starts a server of a test's own
(to stop it, or to start it with other options). Every server is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowledger.app import App, CreateToken
from tests import tls
from tests.conftest import REPO
from tests.inprocess import run_in_process
from tests.pg import BACKENDS, Cluster

FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")
ROLES = ("viewer", "operator", "admin")
START_TIMEOUT = 60.0  # a loaded shared machine: a PostgreSQL server with a worker took >30 s
STOP_TIMEOUT = 45.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """A running ``flowledger serve``."""

    base_url: str
    db_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def client(
        self, role: str | None = None, *, token: str | None = None, **kw: Any
    ) -> httpx.Client:
        """An httpx client on the server: with the token of ``role``, or ``token``."""
        secret = token if token is not None else self.tokens[role] if role else None
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        kw.setdefault("timeout", 30.0)
        kw.setdefault("verify", tls.CONTEXT)
        return httpx.Client(base_url=self.base_url, headers=headers, **kw)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``flowledger ARGS`` on the server's database."""
        return run_cli(self.env, *args, timeout=timeout)

    def cli_in_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``flowledger ARGS`` on the server's database in this process (tests/inprocess.py),
        where what it prints is the subject and not its process (a process costs seconds)."""
        return run_in_process(args, env=self.env, cwd=REPO)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, and the exit code once it is gone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"serve did not stop on SIGTERM:\n{self.output()}") from None


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWLEDGER, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        check=False,
    )


def create_tokens(db_url: str) -> dict[str, str]:
    """A token per role (``t-viewer`` ...), made in this process: three ``flowledger tokens
    create`` runs cost seconds per server (the command's own tests are elsewhere)."""

    async def make() -> dict[str, str]:
        async with App(db_url) as app:
            return {
                role: str(
                    (await app.tokens.create(CreateToken(name=f"t-{role}", role=role)))["token"]
                )
                for role in ROLES
            }

    # On a thread of its own: the browser tests call this while sync Playwright's event
    # loop runs on the main thread, where asyncio.run() is refused.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


def service_env(db_url: str, folder: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWLEDGER_DB": db_url,
        "FLOWLEDGER_ARTIFACTS": str(folder / "artifacts"),
        "FLOWLEDGER_HTTP_ALLOW": "127.0.0.1,::1,localhost",
        "COLUMNS": "200",
        **extra,
    }


def start(
    db_url: str,
    folder: Path,
    *args: str,
    tokens: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> Service:
    """Start ``flowledger serve`` in ``cwd`` (waits until /readyz answers 200)."""
    environment = service_env(db_url, folder, **(env or {}))
    made = create_tokens(db_url) if tokens else {}
    port = free_port()
    log = folder / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [FLOWLEDGER, "serve", "--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=environment,
        )
    service = Service(f"http://127.0.0.1:{port}", db_url, environment, process, log, made)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n{service.output()}")
        try:
            if (
                httpx.get(f"{service.base_url}/readyz", timeout=1, verify=tls.CONTEXT).status_code
                == 200
            ):
                return service
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"serve was not ready in time:\n{service.output()}")
        time.sleep(0.05)


@contextmanager
def launch(
    db_url: str,
    folder: Path,
    *args: str,
    tokens: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> Iterator[Service]:
    """A server of one's own; it must exit 0 on SIGTERM afterwards."""
    service = start(db_url, folder, *args, tokens=tokens, env=env, cwd=cwd)
    try:
        yield service
    finally:
        code = service.stop()
    assert code == 0, service.output()


@contextmanager
def fresh_database(request: pytest.FixtureRequest, backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'serve.db'}"
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    name = cluster.lend_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.give_back(name)


def session_server(backend: str) -> Any:
    """The session's server on ``backend`` as a fixture named ``{backend}_service``."""

    @pytest.fixture(scope="session", name=f"{backend}_service")
    def server(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Service]:
        folder = tmp_path_factory.mktemp(f"serve-{backend}")
        with fresh_database(request, backend, folder) as db_url, launch(db_url, folder) as running:
            yield running

    return server


sqlite_service = session_server("sqlite")
postgresql_service = session_server("postgresql")


@pytest.fixture(scope="session", params=BACKENDS)
def service(request: pytest.FixtureRequest) -> Service:
    """One server per backend for the whole package, with a token per role. Tests stay
    independent by naming what they make uniquely (helpers.unique) and by looking only
    at what they made; a test that needs other settings launches its own. Decision: one
    server per package, not per module: starting one (tokens, migrations, serve) cost
    seconds per module and backend. The servers are ``sqlite_service`` and
    ``postgresql_service``, which a test can also ask for together (tests/api/test_fuzz.py);
    they live for the session, so a switch of this parameter restarts neither."""
    running: Service = request.getfixturevalue(f"{request.param}_service")
    return running


@pytest.fixture(params=BACKENDS)
def backend_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for a server of the test's own (SQLite and PostgreSQL)."""
    with fresh_database(request, request.param, tmp_path) as db_url:
        yield db_url

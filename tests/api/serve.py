"""A ``flowledger serve`` subprocess on a free loopback port, with a token per role,
for the live and seed acceptance tests (tests/api/test_live.py, test_seed.py).

Kept apart from the core's tests/api/conftest.py: ``served(db_url, tmp_path, env)`` is a
context manager, so a test can set limits through the environment first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from flowledger.app import App, CreateToken, PushWorkflows, WorkflowText
from tests import tls

FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")
STARTUP = 60.0  # as tests/api/conftest.py START_TIMEOUT

HELLO = """\
name: hello
steps:
  - {id: greet, type: sys.transform, input: {value: "hi {{ input.name }}"}}
"""
ASK = """\
name: ask
steps:
  - id: approve
    type: sys.wait_for_input
    input:
      prompt: ok?
      schema: {type: object}
  - {id: after, type: sys.transform, input: {value: 1}}
"""


@dataclass
class Server:
    url: str
    db_url: str
    tokens: dict[str, str]

    def client(self, role: str = "operator", **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        kwargs.setdefault("verify", tls.CONTEXT)
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _prepare(db_url: str) -> dict[str, str]:
    async with App(db_url) as app:
        await app.workflows.push(
            PushWorkflows(texts=[WorkflowText(text=HELLO), WorkflowText(text=ASK)])
        )
        tokens = {}
        for role in ("viewer", "operator", "admin"):
            made = await app.tokens.create(CreateToken(name=f"t-{role}", role=role))
            tokens[role] = made["token"]
        return tokens


@contextlib.contextmanager
def served(db_url: str, tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    tokens = asyncio.run(_prepare(db_url))
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [FLOWLEDGER, "serve", "--port", str(port), "--db", db_url],
        env={**os.environ, "FLOWLEDGER_DB": db_url, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1, verify=tls.CONTEXT).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "serve.log").read_text())
            time.sleep(0.05)
        yield Server(url, db_url, tokens)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

"""sys.http_request's failure codes, from a real local server: ``http.5xx``, ``http.4xx``
and ``http.429`` by status, ``http.connection`` when nothing answers, and a step whose
``retry.codes`` lists the code is tried again."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from flowledger import Engine
from tests.runtime.support import yaml
from tests.steps.http_server import serve


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve() as url:
        yield url


def _workflow(url: str, codes: str) -> str:
    return yaml(
        f"""
        name: call
        steps:
          - id: call
            type: sys.http_request
            input: {{url: "{url}"}}
            retry: {{max_attempts: 2, codes: {codes}, backoff: fixed, initial_delay: 10ms}}
        """
    )


def _errors(doc: dict[str, Any]) -> list[dict[str, Any]]:
    runs = sorted(doc["steps"].values(), key=lambda s: s["attempt"])
    return [r["error"] for r in runs]


@pytest.mark.parametrize(
    ("status", "code", "codes", "attempts"),
    [
        (503, "http.5xx", "[http.5xx]", 2),
        (503, "http.5xx", "[http]", 2),  # `http` takes every http code
        (503, "http.5xx", "[http.429]", 1),
        (429, "http.429", "[http.429]", 2),
        (408, "http.4xx", "[http.4xx]", 2),  # retryable 4xx
        (404, "http.4xx", "[http.4xx]", 1),  # listed, but a 404 is never retried
    ],
)
async def test_an_http_status_has_its_code(
    engine: Engine, base: str, status: int, code: str, codes: str, attempts: int
) -> None:
    workflow = engine.load_text(_workflow(f"{base}/status/{status}", codes))
    doc = await engine.run(workflow)
    assert doc["runtimeStatus"] == "Failed"
    errors = _errors(doc)
    assert [e["code"] for e in errors] == [code] * attempts
    assert errors[0]["details"]["statusCode"] == status
    failed = [e["detail"] for e in await engine.events(doc["id"]) if e["kind"] == "step.failed"]
    assert [f["code"] for f in failed] == [code] * attempts


async def test_nothing_listening_is_http_connection(engine: Engine) -> None:
    with socket.socket() as sock:  # a port just freed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workflow = engine.load_text(_workflow(f"http://127.0.0.1:{port}/", "[http.connection]"))
    doc = await engine.run(workflow)
    assert [e["code"] for e in _errors(doc)] == ["http.connection"] * 2

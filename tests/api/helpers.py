"""Small helpers for the HTTP tests: unique names, pushing, waiting."""

from __future__ import annotations

import textwrap
import time
import uuid
from typing import Any

import httpx

#: A workflow started by an unsigned webhook at /hooks/{name}/in.
HOOK = """
name: {name}
triggers:
  - {{type: webhook, path: "{name}/in", auth: none}}
steps:
  - {{id: a, type: sys.transform, input: {{value: 1}}}}
"""

HELLO = """
name: {name}
input_schema:
  type: object
  properties: {{who: {{type: string, minLength: 1}}}}
  required: [who]
output: {{greeting: "{{{{ steps.greet.output.text }}}}"}}
steps:
  - id: greet
    type: sys.transform
    input: {{value: {{text: "Hello, {{{{ input.who }}}}!"}}}}
"""

APPROVAL = """
name: {name}
steps:
  - id: approve
    type: sys.wait_for_input
    input:
      prompt: "ok?"
      schema:
        type: object
        properties: {{approved: {{type: boolean}}}}
        required: [approved]
  - id: done
    type: sys.transform
    input: {{value: "{{{{ steps.approve.output.approved }}}}"}}
"""

FAILING = """
name: {name}
steps:
  - id: boom
    type: sys.fail
    input: {{message: "on purpose"}}
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def push(http: httpx.Client, template: str, name: str | None = None) -> str:
    """Push a definition made from ``template``; its name."""
    name = name or unique("wf")
    answer = http.post(
        "/api/v1/workflows",
        content=textwrap.dedent(template.format(name=name)),
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status_code == 201, answer.text
    return name


def start(http: httpx.Client, workflow: str, input: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = http.post(f"/api/v1/workflows/{workflow}/executions", json={"input": input or {}})
    assert answer.status_code == 201, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def settled(http: httpx.Client, execution_id: str, wait: float = 30) -> dict[str, Any]:
    """The execution once it ends or waits for input (long-poll)."""
    answer = http.get(f"/api/v1/executions/{execution_id}", params={"wait": min(wait, 60)})
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def terminal(http: httpx.Client, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    """The execution once it ends. After an input or a cancel the execution still awaits
    input until a worker acts on the signal, and ``?wait`` answers at once for an
    execution awaiting input: so long-poll again until the status is terminal."""
    deadline = time.monotonic() + timeout
    while True:
        doc = settled(http, execution_id, wait=max(1.0, deadline - time.monotonic()))
        if doc["runtimeStatus"] != "AwaitingUserInput" or time.monotonic() > deadline:
            return doc
        time.sleep(0.02)


def error(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The error body of an answer that must have ``status``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    found: dict[str, Any] = body["error"]
    return found

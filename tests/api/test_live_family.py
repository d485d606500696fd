"""``GET /executions/{id}/events?children=true``: a parent's stream with its
descendants' events, children started after it opened included (tour 25 M1)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowledger.app import App, PushWorkflows, WorkflowText
from tests.api.serve import Server, served
from tests.api.test_live import SSE, messages

KID = """\
name: kid
steps:
  - {id: nap, type: sys.delay, input: {duration: 200ms}}
"""
FAMILY = """\
name: family
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: kid, items: [1, 2], concurrency: 1, input: {}}
"""


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    async def push() -> None:
        async with App(db_url) as app:
            texts = [WorkflowText(text=KID), WorkflowText(text=FAMILY)]
            await app.workflows.push(PushWorkflows(texts=texts))

    asyncio.run(push())
    with served(db_url, tmp_path) as running:
        yield running


def test_a_parents_stream_carries_its_childrens_events(server: Server) -> None:
    with server.client() as client:
        started = client.post("/api/v1/workflows/family/executions", json={"input": {}})
        assert started.status_code == 201, started.text
        parent = started.json()["id"]
        url = f"/api/v1/executions/{parent}/events"
        seen: list[dict[str, Any]] = []
        with client.stream("GET", url, params={"children": "true"}, headers=SSE) as response:
            assert response.status_code == 200
            seen = list(messages(response))  # it ends once the whole family has
        kids = [
            e["id"]
            for e in client.get("/api/v1/executions", params={"parentId": parent}).json()["items"]
        ]
        assert len(kids) == 2
        by_execution: dict[str, list[int]] = {}
        for message in seen:
            execution_id = message["data"]["executionId"]
            assert message["id"] == f"{execution_id}/{message['data']['seq']}"
            by_execution.setdefault(execution_id, []).append(message["data"]["seq"])
        assert set(by_execution) == {parent, *kids}
        for seqs in by_execution.values():  # each one's history whole, in order
            assert seqs == list(range(1, len(seqs) + 1))
        ends = [m["data"]["executionId"] for m in seen if m["event"] == "execution.completed"]
        assert sorted(ends) == sorted([parent, *kids])
        # The default stays the execution's own events.
        with client.stream("GET", url, headers=SSE) as response:
            own = [m["data"] for m in messages(response)]
        assert [e["seq"] for e in own] == by_execution[parent]
        assert all("executionId" not in e for e in own)
        # Over, all of it: a reconnect is told to stop.
        last = seen[-1]["id"]
        again = client.get(url, params={"children": "true"}, headers={**SSE, "Last-Event-ID": last})
        assert again.status_code == 204

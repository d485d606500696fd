"""Long polls and live event streams over HTTP against a real ``flowledger serve``
(its in-process workers run what the tests start), on SQLite and PostgreSQL.

No wall-clock asserts: each test only checks what arrives, and in which order.

One server per module (``shared``; a server's start costs seconds), with the stream and
wait limits both set; each test gets tokens of its own (``server``), since both limits
are per token, and looks only at the executions it starts. The revoked token's test
reads the unfiltered stream of every execution, so it keeps a server of its own.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowledger.app import App, CreateToken, RevokeToken, SubmitInput
from tests import tls
from tests.api.conftest import fresh_database
from tests.api.serve import Server, served
from tests.pg import BACKENDS

SSE = {"Accept": "text/event-stream"}


LIMITS = {"FLOWLEDGER_MAX_STREAMS": "3", "FLOWLEDGER_MAX_WAITS": "2"}


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The module's server, on a fresh database of the backend."""
    folder = tmp_path_factory.mktemp(f"live-{request.param}")
    with (
        fresh_database(request, request.param, folder) as db_url,
        served(db_url, folder, LIMITS) as running,
    ):
        yield running


def _fresh_tokens(db_url: str) -> dict[str, str]:
    async def make() -> dict[str, str]:
        async with App(db_url) as app:
            return {
                role: (await app.tokens.create(CreateToken(name=f"{role}-{uuid.uuid4().hex[:8]}",
                                                           role=role)))["token"]
                for role in ("viewer", "operator", "admin")
            }  # fmt: skip

    return asyncio.run(make())


@pytest.fixture
def server(shared: Server) -> Server:
    """The module's server with tokens of this test's own: the limits are per token."""
    return Server(shared.url, shared.db_url, _fresh_tokens(shared.db_url))


@pytest.fixture
def own_server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    with served(db_url, tmp_path, LIMITS) as running:
        yield running


def messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The SSE messages of a streamed response: {id, event, data} (comments skipped)."""
    fields: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                fields["data"] = json.loads(fields["data"])
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def start(client: httpx.Client, workflow: str, data: dict[str, Any] | None = None) -> str:
    answer = client.post("/api/v1/workflow-runs", json={"workflowId": workflow, "input": data})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def submit(db_url: str, execution_id: str) -> None:
    async def go() -> None:
        async with App(db_url) as app:
            await app.executions.submit_input(SubmitInput(id=execution_id, step="approve", data={}))

    asyncio.run(go())


def test_a_stream_follows_an_execution_live_and_resumes_exactly(server: Server) -> None:
    with server.client() as client:
        execution_id = start(client, "ask")
        url = f"/api/v1/executions/{execution_id}/events"
        seen: list[dict[str, Any]] = []
        with client.stream("GET", url, headers=SSE) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for message in messages(response):
                seen.append(message)
                if message["event"] == "execution.awaiting_input":
                    submit(server.db_url, execution_id)  # the server's worker carries on
        # the stream ended by itself once the execution completed
        assert seen[-1]["event"] == "execution.completed"
        seqs = [int(m["id"]) for m in seen]
        assert seqs == list(range(1, len(seen) + 1))  # no gap, no repeat
        assert all(m["data"]["seq"] == int(m["id"]) for m in seen)
        assert all(m["data"]["kind"] == m["event"] for m in seen)
        history = client.get(url).json()  # the JSON list: the same events
        assert [e["seq"] for e in history] == seqs
        assert [e["seq"] for e in client.get(url, params={"after": 2}).json()] == seqs[2:]
        paged = client.get(url, params={"after": 2, "limit": 2}).json()
        assert [e["seq"] for e in paged] == seqs[2:4]
        assert client.get(url, params={"limit": 0}).status_code == 422

        middle = len(seqs) // 2
        headers = {**SSE, "Last-Event-ID": str(middle)}
        with client.stream("GET", url, headers=headers) as response:
            resumed = [int(m["id"]) for m in messages(response)]
        assert resumed == seqs[middle:]
        # nothing after the last one, and it ended: 204 stops an EventSource reconnecting
        ended = client.get(url, headers={**SSE, "Last-Event-ID": str(seqs[-1])})
        assert ended.status_code == 204
        bad = client.get(url, headers={**SSE, "Last-Event-ID": "x"})
        assert bad.status_code == 422
        said = bad.json()["error"]["message"]
        assert said == "Last-Event-ID: must be the seq of an event of this execution", said
        huge = client.get(url, headers={**SSE, "Last-Event-ID": "9" * 23})  # it said "after"
        assert huge.json()["error"]["message"].startswith("Last-Event-ID: must be at most")
        assert client.get("/api/v1/executions/nope/events", headers=SSE).status_code == 404


def test_the_workflow_stream_sees_two_executions(server: Server) -> None:
    with server.client("viewer") as viewer, server.client() as operator:
        with viewer.stream("GET", "/api/v1/events", params={"workflow": "hello"}) as response:
            assert response.status_code == 200
            first = start(operator, "hello", {"name": "a"})
            start(operator, "ask")  # another workflow: not on this stream
            second = start(operator, "hello", {"name": "b"})
            ended: set[str] = set()
            per_execution: dict[str, list[int]] = {first: [], second: []}
            for message in messages(response):
                execution_id = message["data"]["executionId"]
                assert execution_id in per_execution
                assert message["id"] == f"{execution_id}/{message['data']['seq']}"
                per_execution[execution_id].append(message["data"]["seq"])
                if message["event"] == "execution.completed":
                    ended.add(execution_id)
                if ended == {first, second}:
                    break
        for seqs in per_execution.values():
            assert seqs == list(range(1, len(seqs) + 1))


def test_streams_past_the_per_token_limit_are_refused(server: Server) -> None:
    with server.client("viewer") as client:
        with (
            client.stream("GET", "/api/v1/events") as one,
            client.stream("GET", "/api/v1/events") as two,
            client.stream("GET", "/api/v1/events") as three,
        ):
            assert one.status_code == two.status_code == three.status_code == 200
            refused = client.get("/api/v1/events")
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "1"
            error = refused.json()["error"]
            assert "FLOWLEDGER_MAX_STREAMS=3" in error["message"]
        with server.client("operator") as other, other.stream("GET", "/api/v1/events") as four:
            assert four.status_code == 200  # the limit is per token
    # closed streams give their slots back
    with server.client("viewer") as client, client.stream("GET", "/api/v1/events") as again:
        assert again.status_code == 200


def test_a_closed_stream_gives_its_slot_back_at_once(server: Server) -> None:
    """A closed tab (the connection dropped, nothing more read) frees its slot when the
    server hears the disconnect, not at the next keep-alive write 15 s later: all three
    of the token's slots are taken again at once, three times over."""
    for _ in range(3):
        with (
            server.client("admin") as client,
            client.stream("GET", "/api/v1/events") as one,
            client.stream("GET", "/api/v1/events") as two,
            client.stream("GET", "/api/v1/events") as three,
        ):
            assert one.status_code == two.status_code == three.status_code == 200
            next(one.iter_bytes())  # the stream is open on the server's side
        # The connections are closed; the server frees the slots as it hears it (a retry
        # closes its streams too: those must be freed as promptly for the next one).
        deadline = time.monotonic() + 5  # far below the keep-alive (15 s)
        with server.client("admin") as client:
            while True:
                with (
                    client.stream("GET", "/api/v1/events") as one,
                    client.stream("GET", "/api/v1/events") as two,
                    client.stream("GET", "/api/v1/events") as three,
                ):
                    codes = (one.status_code, two.status_code, three.status_code)
                if codes == (200, 200, 200) or time.monotonic() > deadline:
                    break
            assert codes == (200, 200, 200)


def test_streams_need_a_token(server: Server) -> None:
    answer = httpx.get(f"{server.url}/api/v1/events", headers=SSE, verify=tls.CONTEXT)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_s_stream_ends_before_it_sends_more(own_server: Server) -> None:
    server = own_server

    async def token(verb: str) -> str:
        async with App(server.db_url) as app:
            if verb == "create":
                return (await app.tokens.create(CreateToken(name="watcher", role="viewer")))[
                    "token"
                ]
            await app.tokens.revoke(RevokeToken(name="watcher"))
            return ""

    secret = asyncio.run(token("create"))
    headers = {"Authorization": f"Bearer {secret}"}
    with (
        server.client() as operator,
        httpx.Client(base_url=server.url, headers=headers, verify=tls.CONTEXT, timeout=60) as mine,
        mine.stream("GET", "/api/v1/events") as response,
    ):
        assert response.status_code == 200
        first = start(operator, "hello", {"name": "a"})
        received = messages(response)
        assert next(received)["data"]["executionId"] == first
        asyncio.run(token("revoke"))  # in another process, as `flowledger tokens revoke`
        while mine.get("/api/v1/executions").status_code != 401:  # the server knows
            time.sleep(0.05)
        second = start(operator, "hello", {"name": "b"})
        rest = [m["data"]["executionId"] for m in received]  # until the server ends it
    assert second not in rest
    assert set(rest) <= {first}


NAP = "name: nap\nsteps:\n  - {id: nap, type: sys.delay, input: {duration: 60s}}\n"


def test_a_long_poll_whose_client_left_gives_its_slot_back(server: Server) -> None:
    """Clients that gave up on their waits do not hold the token's wait slots for the
    rest of the wait (here 30 s; FLOWLEDGER_MAX_WAITS=2): a new wait is taken at once,
    not refused (429)."""
    with server.client("admin") as admin:
        pushed = admin.post("/api/v1/workflows", content=NAP)
        assert pushed.status_code == 201, pushed.text
        napping = start(admin, "nap")
    path = f"/api/v1/executions/{napping}"
    for _ in range(2):  # both slots, then the clients give up
        with server.client("viewer") as impatient, pytest.raises(httpx.ReadTimeout):
            impatient.get(path, params={"wait": 30}, timeout=0.5)
    deadline = time.monotonic() + 10  # far below the 30 s the waits asked for
    with server.client("viewer") as viewer:
        while True:
            status = viewer.get(path, params={"wait": 0.1}).status_code
            if status != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert status == 200

"""``POST /api/v1/workflows/{name}/executions``: its plainest requests are answered before
routing (api.hot). Against the real server: the answers must be the routed ones (a query
string sends a request to the route), errors keep their shape. Against ``HotPaths``
alone, with a real application: which requests it answers itself, and that the rest
reach the route with their body as sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from flowledger.api.hot import HotPaths
from flowledger.api.routes import executions, workflows
from flowledger.app import App, CreateToken, ListExecutions, PushWorkflows, WorkflowText
from tests.api.conftest import Service
from tests.api.helpers import APPROVAL, HELLO, error, push
from tests.api.test_metrics import timed

#: What differs between two starts of the same request: the new execution's own.
OWN = {"id", "createdAt", "lastActivityAt", "correlationId"}  # made when not given
#: A workflow that needs no input.
PLAIN = "name: {name}\nsteps:\n  - {{id: a, type: sys.transform, input: {{value: 1}}}}\n"


def _starts(http: httpx.Client, name: str, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
    """The same start plain (api.hot) and routed (a query: the FastAPI route). The query
    is ``&``, which names no parameter: the route refuses one it does not take."""
    path = f"/api/v1/workflows/{name}/executions"
    return http.post(path, **kw), http.post(f"{path}?&", **kw)


def _same(plain: httpx.Response, routed: httpx.Response) -> dict[str, Any]:
    assert plain.status_code == routed.status_code, (plain.text, routed.text)
    assert plain.headers["content-type"] == routed.headers["content-type"]
    mine, theirs = plain.json(), routed.json()
    if plain.status_code == 201:
        assert mine["id"] != theirs["id"]
        mine, theirs = ({k: v for k, v in doc.items() if k not in OWN} for doc in (mine, theirs))
    assert mine == theirs
    found: dict[str, Any] = plain.json()
    return found


def test_a_plain_start_is_the_routed_one(service: Service) -> None:
    with service.client("operator") as operator, service.client("admin") as admin:
        name = push(admin, APPROVAL)
        body = {"input": {"amount": 5}, "correlationId": "order-7"}
        doc = _same(*_starts(operator, name, json=body))
        assert doc["runtimeStatus"] in ("NotStarted", "Running", "AwaitingUserInput")
        assert doc["correlationId"] == "order-7"
        assert doc["createdBy"] == "api-token:t-operator"
        assert doc["trigger"]["arguments"] == {"amount": 5}
        _same(*_starts(operator, name))  # no body at all
        _same(*_starts(operator, name, content=b"", headers={"Content-Type": "application/json"}))
        charset = {"Content-Type": "application/json; charset=utf-8"}
        _same(*_starts(operator, name, content=json.dumps(body).encode(), headers=charset))


def test_a_plain_start_runs_the_version_it_names(service: Service) -> None:
    with service.client("admin") as admin:
        name = push(admin, APPROVAL)
        push(admin, APPROVAL.replace("ok?", "ok again?"), name)
        first = _same(*_starts(admin, name, json={"version": 1}))
        assert first["workflowVersion"] == 1
        assert _same(*_starts(admin, name))["workflowVersion"] == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input": 5}, 422),  # not an object
        ({"nope": 1}, 422),  # no such field
        ({"version": 0}, 422),  # the application's rule (StartExecution)
        ({"version": 99}, 404),
        ({"correlationId": "x" * 201}, 422),
        ({"input": {}}, 422),  # the workflow's input schema
        ([1, 2], 422),
        (None, 422),  # JSON null: as no body, so no input
        ({"input": {"who": "hot"}}, 201),
    ],
)
def test_plain_starts_that_fail_answer_as_the_route_does(
    service: Service, body: object, status: int
) -> None:
    with service.client("operator") as operator, service.client("admin") as admin:
        name = push(admin, HELLO)
        plain, routed = _starts(operator, name, content=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})  # fmt: skip
        _same(plain, routed)
        assert plain.status_code == status


def test_starts_without_the_right_token_or_body_answer_as_the_route_does(
    service: Service,
) -> None:
    with service.client("admin") as admin:
        name = push(admin, PLAIN)
    path = f"/api/v1/workflows/{name}/executions"
    with service.client() as anonymous:
        assert _same(*_starts(anonymous, name))["error"]["code"] == "unauthenticated"
        basic = {"Authorization": f"Basic {service.tokens['operator']}"}
        assert error(anonymous.post(path, headers=basic), 401)["code"] == "unauthenticated"
    with service.client(token="flt_not-a-token") as forged:
        assert error(forged.post(path), 401) == _same(*_starts(forged, name))["error"]
    with service.client("viewer") as viewer:
        assert error(viewer.post(path), 403) == _same(*_starts(viewer, name))["error"]
    with service.client("operator") as operator:
        missing = _same(*_starts(operator, "no-such-workflow-hot"))
        assert missing["error"]["code"] == "not_found"
        for content, kind in ((b"{not json", "application/json"), (b"{}", "text/plain")):
            headers = {"Content-Type": kind}
            _same(*_starts(operator, name, content=content, headers=headers))
        assert operator.post(path + "/").status_code in (307, 404)  # not this route


def test_plain_starts_are_timed_under_the_route(service: Service) -> None:
    with service.client("admin") as admin:
        name = push(admin, PLAIN)
        route = "/api/v1/workflows/{name}/executions"
        before = timed(admin, "POST", route, "201")
        for _ in range(3):
            assert admin.post(f"/api/v1/workflows/{name}/executions").status_code == 201
        assert timed(admin, "POST", route, "201") >= before + 3


# -- HotPaths alone ---------------------------------------------------------------------------


class Route:
    """Stands for the FastAPI application behind HotPaths: records what reaches it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"routed"})


async def _call(
    hot: HotPaths, path: str, body: bytes, headers: dict[str, str], query: bytes = b""
) -> tuple[int, bytes]:
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent: list[Message] = []
    # As a server gives them: the body once, then a disconnect once the client goes.
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await hot(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_hot_paths_answer_plain_starts_and_hand_on_the_rest(tmp_path: Path) -> None:
    async with App(f"sqlite:///{tmp_path / 'hot.db'}") as app:
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=PLAIN.format(name="hot"))]))
        tokens = {
            role: str((await app.tokens.create(CreateToken(name=f"h-{role}", role=role)))["token"])
            for role in ("viewer", "operator")
        }
        route = Route()
        hot = HotPaths(route, app, executions.get_execution_route(),
                       workflows.start_execution_route())  # fmt: skip
        path = "/api/v1/workflows/hot/executions"
        operator = {"Authorization": f"Bearer {tokens['operator']}"}
        json_operator = {**operator, "Content-Type": "application/json"}

        status, answer = await _call(hot, path, b'{"correlationId": "c"}', json_operator)
        assert status == 201 and route.bodies == []
        made = json.loads(answer)
        assert made["correlationId"] == "c" and made["createdBy"] == "api-token:h-operator"
        assert (await _call(hot, path, b"", operator))[0] == 201  # no body, no content type
        missing = await _call(hot, "/api/v1/workflows/none/executions", b"", operator)
        assert missing[0] == 404 and route.bodies == []  # asked of the application: answered

        handed_on = [
            (path, b'{"input": 5}', json_operator, b""),  # the model refuses it
            (path, b"{nope", json_operator, b""),  # not JSON
            (path, b"{}", {**operator, "Content-Type": "text/plain"}, b""),
            (path, b"{}", {"Authorization": f"Bearer {tokens['viewer']}"}, b""),  # role
            (path, b"{}", {"Authorization": "Bearer flt_forged"}, b""),
            (path, b"{}", {}, b""),  # no token
            (path, b"{}", json_operator, b"routed=1"),  # a query
            ("/api/v1/workflows/a/b/executions", b"{}", json_operator, b""),
        ]
        for where, body, headers, query in handed_on:
            assert await _call(hot, where, body, headers, query) == (299, b"routed")
            assert route.bodies[-1] == body, (where, body, headers, query)
        assert len(route.bodies) == len(handed_on)
        listed = await app.executions.list(ListExecutions(workflow="hot"))
        assert len(listed.items) == 2  # the two answered here; nothing handed on started

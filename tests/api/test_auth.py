"""The auth matrix: every route by no token, a bad token, a malformed header and each
role. A role below the route's answers 403, no or a bad token 401; an allowed role gets
past authentication (whatever the route then answers: 2xx, 404, 422…).

``AUTH_TABLE`` lists every ``/api/v1`` route with the weakest role that may call it;
``test_every_route_is_in_the_table`` fails for a route missing here: add its row.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from flowledger.app import App, CreateToken
from tests.api.conftest import ROLES, Service

#: (method, path, weakest role, request keyword arguments)
AUTH_TABLE: list[tuple[str, str, str, dict[str, Any]]] = [
    ("GET", "/api/v1/workflows", "viewer", {}),
    ("POST", "/api/v1/workflows", "admin", {"content": "name: ["}),
    ("GET", "/api/v1/workflows/{name}", "viewer", {}),
    ("GET", "/api/v1/workflows/{name}/versions/{version}", "viewer", {}),
    ("POST", "/api/v1/workflows/{name}/executions", "operator", {"json": {}}),
    ("GET", "/api/v1/executions", "viewer", {}),
    ("GET", "/api/v1/executions/{id}", "viewer", {}),
    ("POST", "/api/v1/executions/{id}/cancel", "operator", {}),
    ("POST", "/api/v1/executions/{id}/retry", "operator", {}),
    ("POST", "/api/v1/executions/{id}/rerun", "operator", {"json": {"fromStep": "a"}}),
    ("POST", "/api/v1/executions/{id}/steps/{step_id}/input", "operator", {"json": {"data": 1}}),
    ("GET", "/api/v1/executions/{id}/artifacts", "viewer", {}),
    ("GET", "/api/v1/artifacts", "viewer", {"params": {"workflowRunId": "x"}}),
    ("GET", "/api/v1/artifacts/{id}", "viewer", {}),
    ("POST", "/api/v1/job-runs", "operator", {"content": "name: ["}),
    ("GET", "/api/v1/job-runs", "viewer", {}),
    ("GET", "/api/v1/job-runs/{id}", "viewer", {}),
    ("POST", "/api/v1/job-runs/{id}/retry", "operator", {}),
    ("POST", "/api/v1/job-runs/{id}/cancel", "operator", {}),
    ("GET", "/api/v1/entity-types", "viewer", {}),
    ("POST", "/api/v1/entity-types", "admin", {"json": {"name": "MatrixType"}}),
    ("GET", "/api/v1/entities/{type}", "viewer", {}),
    ("POST", "/api/v1/entities/{type}", "operator", {"json": {}}),
    ("GET", "/api/v1/entities/{type}/{id}", "viewer", {}),
    ("PATCH", "/api/v1/entities/{type}/{id}", "operator", {"json": {}}),
    ("DELETE", "/api/v1/entities/{type}/{id}", "operator", {}),
    ("GET", "/api/v1/executions/{id}/events", "viewer", {}),
    # an empty workflow is refused (422) before streaming: a live stream would never end
    ("GET", "/api/v1/events", "viewer", {"params": {"workflow": ""}}),
    ("GET", "/api/v1/workflow-runs", "viewer", {}),
    ("POST", "/api/v1/workflow-runs", "operator", {"json": {"workflowId": "no-such"}}),
    ("GET", "/api/v1/workflow-runs/{id}", "viewer", {}),
    ("GET", "/api/v1/executions/{id}/states", "viewer", {}),
    ("POST", "/api/v1/subscriptions", "admin", {"json": {"url": "ftp://x", "events": []}}),
    ("GET", "/api/v1/subscriptions", "viewer", {}),
    ("GET", "/api/v1/subscriptions/{id}", "viewer", {}),
    ("DELETE", "/api/v1/subscriptions/{id}", "admin", {}),
    ("GET", "/api/v1/subscriptions/{id}/deliveries", "viewer", {}),
    ("GET", "/api/v1/executions/{id}/logs", "viewer", {}),
    ("POST", "/api/v1/workflows/{name}/disable", "admin", {}),
    ("POST", "/api/v1/workflows/{name}/enable", "admin", {}),
    ("DELETE", "/api/v1/workflows/{name}", "admin", {}),
    ("POST", "/api/v1/workflows/{name}/backfill", "operator", {"json": {}}),
    ("GET", "/api/v1/tokens", "admin", {}),
    # an empty name is refused (422): the matrix creates no token
    ("POST", "/api/v1/tokens", "admin", {"json": {"name": ""}}),
    ("DELETE", "/api/v1/tokens/{name}", "admin", {}),
]
#: Routes that need no token at all.
OPEN = ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"]
CREDENTIALS = ["none", "bad", "malformed", *ROLES]
_FILL = {"name": "no-such", "version": "1", "id": "no-such", "step_id": "s", "type": "NoType"}


def _headers(service: Service, credential: str) -> dict[str, str]:
    if credential == "none":
        return {}
    if credential == "bad":
        return {"Authorization": "Bearer flt_not-a-token"}
    if credential == "malformed":
        return {"Authorization": f"Basic {service.tokens['admin']}"}
    return {"Authorization": f"Bearer {service.tokens[credential]}"}


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize(
    ("method", "path", "needs", "kwargs"), AUTH_TABLE, ids=[f"{m} {p}" for m, p, _, _ in AUTH_TABLE]
)
def test_auth_matrix(
    service: Service, method: str, path: str, needs: str, kwargs: dict[str, Any], credential: str
) -> None:
    with service.client() as http:
        answer = http.request(
            method, path.format(**_FILL), headers=_headers(service, credential), **kwargs
        )
    body = answer.json()
    if credential in ("none", "bad", "malformed"):
        assert answer.status_code == 401, answer.text
        assert body["error"]["code"] == "unauthenticated"
    elif ROLES.index(credential) < ROLES.index(needs):
        assert answer.status_code == 403, answer.text
        assert body["error"]["code"] == "forbidden"
    else:
        assert answer.status_code not in (401, 403, 500), answer.text


def test_every_route_is_in_the_table(service: Service) -> None:
    with service.client() as http:
        document = http.get("/api/v1/openapi.json").json()
        for path in OPEN:
            assert http.get(path).status_code == 200, path
    tabled = {(m, p) for m, p, _, _ in AUTH_TABLE}
    served = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if path.startswith("/api/v1/") and method in ("get", "post", "put", "patch", "delete")
    }
    assert served - tabled == set(), "add these routes to AUTH_TABLE"


def test_two_credentials_in_one_request_are_refused(service: Service) -> None:
    """The first of two Authorization headers was taken: the same two tokens acted as
    the viewer or as the admin depending on their order."""
    with service.client() as http:
        for first, second in (("viewer", "admin"), ("admin", "viewer")):
            headers = [
                ("Authorization", f"Bearer {service.tokens[first]}"),
                ("Authorization", f"Bearer {service.tokens[second]}"),
            ]
            answer = http.get("/api/v1/executions", headers=headers)
            assert answer.status_code == 400, answer.text
            found = answer.json()["error"]
            assert found["code"] == "repeated_header"
            assert found["message"] == "headers.Authorization: sent 2 times; send the header once"


def test_an_expired_token_is_401_saying_when_it_expired(service: Service) -> None:
    async def create() -> dict[str, Any]:
        async with App(service.db_url) as app:
            return dict(await app.tokens.create(CreateToken(name="brief", expires_in="1s")))

    made = asyncio.run(create())
    with service.client(token=made["token"]) as http:
        assert http.get("/api/v1/executions").status_code == 200
        time.sleep(1.1)
        answer = http.get("/api/v1/executions")
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    error = answer.json()["error"]
    assert error["code"] == "unauthenticated"
    assert error["message"].startswith(f"the API token expired at {made['expiresAt']}")

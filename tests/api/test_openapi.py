"""The OpenAPI document at /api/v1/openapi.json as a client generator reads it (api.server
builds it from the routes): unique, short operationIds; the SPEC's statuses as enums; an
optional cancel body a generated client can leave out; the outbound webhooks and the
inbound signature headers described (tour 22C F4)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, get_args

import jsonschema
from standardwebhooks import Webhook

from flowledger.app.models import MAX_CANCEL_REASON
from flowledger.app.subscriptions import Event
from flowledger.runtime.status import ExecutionStatus, StepStatus
from tests.api.conftest import Service
from tests.api.helpers import APPROVAL, HELLO, push, settled, start, unique
from tests.worker.receiver import receiver

METHODS = ("get", "head", "post", "put", "patch", "delete")
#: Every operation's id: generated clients name their methods by them, so a change is a
#: breaking change for those clients, and must be made here on purpose.
OPERATION_IDS = {
    "healthz", "headHealthz", "readyz", "headReadyz", "getMetrics", "receiveHook",
    "pushWorkflow", "listWorkflows", "getWorkflow", "deleteWorkflow", "getWorkflowVersion",
    "disableWorkflow", "enableWorkflow", "backfillWorkflow", "startExecution",
    "listExecutions", "getExecution", "cancelExecution", "retryExecution", "rerunExecution",
    "submitInput",
    "listExecutionArtifacts", "getExecutionEvents", "followEvents", "listExecutionLogs",
    "createJobRun", "listJobRuns", "getJobRun", "retryJobRun", "cancelJobRun", "listEntityTypes",
    "createEntityType", "listEntities", "createEntity", "getEntity", "updateEntity",
    "deleteEntity", "listArtifacts", "downloadArtifact", "listWorkflowRuns",
    "createWorkflowRun", "getWorkflowRun", "listInstanceStates", "createSubscription",
    "listSubscriptions", "getSubscription", "deleteSubscription", "listDeliveries",
    "listTokens", "createToken", "revokeToken",
}  # fmt: skip


def document(service: Service) -> dict[str, Any]:
    with service.client() as http:
        answer = http.get("/api/v1/openapi.json")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def operations(doc: dict[str, Any], part: str = "paths") -> list[tuple[str, str, Any]]:
    return [
        (method, path, operation)
        for path, item in doc[part].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_operation_ids_are_unique_short_and_stable(service: Service) -> None:
    """healthz and readyz had one id for GET and HEAD (OpenAPI says MUST be unique), and
    every id was FastAPI's default, get_execution_api_v1_executions__id__get."""
    doc = document(service)
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert set(ids) == OPERATION_IDS
    by_route = {(m, p): op["operationId"] for m, p, op in operations(doc)}
    assert by_route["post", "/api/v1/workflows/{name}/executions"] == "startExecution"
    assert by_route["get", "/api/v1/executions/{id}"] == "getExecution"
    assert by_route["post", "/api/v1/executions/{id}/cancel"] == "cancelExecution"
    assert by_route["post", "/api/v1/executions/{id}/rerun"] == "rerunExecution"
    assert (by_route["get", "/healthz"], by_route["head", "/healthz"]) == (
        "healthz",
        "headHealthz",
    )


def test_statuses_are_enums_of_the_spec_s_values(service: Service) -> None:
    """Typed clients got a plain string for runtimeStatus and a step's status."""
    schemas = document(service)["components"]["schemas"]
    executions = [s.value for s in ExecutionStatus]
    assert schemas["ExecutionDocument"]["properties"]["runtimeStatus"]["enum"] == executions
    assert schemas["StepDocument"]["properties"]["status"]["enum"] == [s.value for s in StepStatus]
    assert schemas["JobRunDocument"]["properties"]["status"]["enum"] == executions
    seed = schemas["WorkflowRunDocument"]["properties"]["status"]["enum"]
    assert seed == [
        "PENDING", "IN_PROGRESS", "AWAITING_USER_INPUT", "COMPLETED",
        "COMPLETED_WITH_NO_ACTION_TAKEN", "FAILED", "CANCELLED",
    ]  # fmt: skip


def test_the_cancel_body_is_an_optional_object(service: Service) -> None:
    """It was anyOf [CancelBody, null]: a client generated from it crashed when called
    without a body. No body, {} and null still all cancel."""
    doc = document(service)
    body = doc["paths"]["/api/v1/executions/{id}/cancel"]["post"]["requestBody"]
    assert body.get("required", False) is False
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CancelBody"
    }
    with service.client("admin") as http:
        name = push(http, APPROVAL)
        for sent in ({}, {"json": {}}, {"content": b"null"}, {"json": {"reason": "r"}}):
            waiting = settled(http, start(http, name)["id"])
            assert waiting["runtimeStatus"] == "AwaitingUserInput"
            headers = {"Content-Type": "application/json"} if "content" in sent else {}
            answer = http.post(
                f"/api/v1/executions/{waiting['id']}/cancel", headers=headers, **sent
            )
            assert answer.status_code in (200, 202), (sent, answer.text)


def test_the_cancel_body_shows_the_reasons_limit(service: Service) -> None:
    """The document did not say that a reason holds at most MAX_CANCEL_REASON characters:
    a generated client learnt it from a 422. Both cancels take that body."""
    doc = document(service)
    for path in ("/api/v1/executions/{id}/cancel", "/api/v1/job-runs/{id}/cancel"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": "#/components/schemas/CancelBody"}, path
    reason = doc["components"]["schemas"]["CancelBody"]["properties"]["reason"]
    [text] = [branch for branch in reason["anyOf"] if branch.get("type") == "string"]
    assert text["maxLength"] == MAX_CANCEL_REASON == 1_000


def test_inbound_hooks_name_their_signature_headers(service: Service) -> None:
    doc = document(service)
    hook = doc["paths"]["/hooks/{path}"]["post"]
    headers = {p["name"]: p for p in hook["parameters"] if p["in"] == "header"}
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature",
                            "Idempotency-Key"}  # fmt: skip
    assert not any(p["required"] for p in headers.values())  # an open hook needs none


def test_the_outbound_webhooks_describe_what_a_receiver_gets(service: Service) -> None:
    """The document had no webhooks section: a receiver's payload and headers were only
    in the README. A real delivery matches the schema it gives, with no other field."""
    doc = document(service)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["webhooks"]) == set(get_args(Event))
    for _, _, operation in operations(doc, "webhooks"):
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/DeliveryPayload"}
        named = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert named == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    components = {"components": doc["components"]}
    strict = {**components, "$ref": "#/components/schemas/DeliveryPayload"}
    with receiver() as hook, service.client("admin") as http:
        name = push(http, HELLO, unique("told"))
        spec = {"url": hook.url, "events": ["execution.completed"], "workflow": name}
        sub = http.post("/api/v1/subscriptions", json=spec).json()
        try:
            done = settled(http, start(http, name, {"who": "Ada"})["id"])
            deadline = time.monotonic() + 30
            while not hook.requests:
                assert time.monotonic() < deadline, "no delivery came"
                time.sleep(0.05)
            got = hook.requests[0]
            payload = Webhook(sub["secret"]).verify(got.body, got.headers)
        finally:
            http.delete(f"/api/v1/subscriptions/{sub['id']}")
    jsonschema.validate(payload, strict)
    schemas = doc["components"]["schemas"]
    assert set(payload) == set(schemas["DeliveryPayload"]["properties"])
    assert set(payload["data"]) == set(schemas["DeliveryData"]["properties"])
    assert payload["data"]["executionId"] == done["id"]
    with service.client("viewer") as http:
        events = http.get(f"/api/v1/executions/{done['id']}/events").json()
    [completed] = [e["seq"] for e in events if e["kind"] == "execution.completed"]
    assert payload["data"]["seq"] == completed

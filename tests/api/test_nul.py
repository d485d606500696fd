"""A NUL character (U+0000) anywhere in what a request carries is refused with a 422
naming the field, on both backends: PostgreSQL can store it neither in text nor in
jsonb, so it must never reach the database (it used to be a 500 there)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests import tls
from tests.api.conftest import Service
from tests.api.helpers import APPROVAL, HELLO, HOOK, error, push, settled, start, unique

#: What it tests differs between the databases (tests/conftest.py: FACE_TESTS).
pytestmark = pytest.mark.both_databases

NUL = "\u0000"


@dataclass(frozen=True)
class Sent:
    """One request with a NUL somewhere, and the field the refusal must name."""

    method: str
    path: str
    field: list[str | int]
    json: Any = None
    content: str | None = None


@pytest.fixture(scope="module")
def scene(service: Service) -> dict[str, str]:
    """What the requests address: a workflow, one waiting for input, a hook, an entity."""
    with service.client("admin") as http:
        kind = unique("Nul").replace("-", "")
        assert http.post("/api/v1/entity-types", json={"name": kind}).status_code == 201
        entity = http.post(f"/api/v1/entities/{kind}", json={"a": 1}).json()["id"]
        waiting = start(http, push(http, APPROVAL))["id"]
        assert settled(http, waiting)["runtimeStatus"] == "AwaitingUserInput"
        return {
            "wf": push(http, HELLO),
            "waiting": waiting,
            "hook": push(http, HOOK),
            "kind": kind,
            "entity": entity,
        }


def _cases(s: dict[str, str]) -> list[Sent]:
    job = {"name": "j", "workflows": [{"workflow": s["wf"], "input": {"who": f"a{NUL}"}}]}
    sub = {"url": "http://127.0.0.1:9/x", "events": ["execution.failed"]}
    return [
        Sent("POST", f"/api/v1/workflows/{s['wf']}/executions", ["input", "who"],
             {"input": {"who": f"a{NUL}b"}}),
        Sent("POST", f"/api/v1/workflows/{s['wf']}/executions", ["input", f"x{NUL}"],
             {"input": {f"x{NUL}": 1}}),
        Sent("POST", f"/api/v1/workflows/{s['wf']}/executions", ["correlationId"],
             {"input": {"who": "a"}, "correlationId": NUL}),
        Sent("POST", "/api/v1/workflow-runs", ["input", "who", 0],
             {"workflowId": s["wf"], "input": {"who": [NUL]}}),
        Sent("POST", f"/api/v1/executions/{s['waiting']}/steps/approve/input", ["data", "note"],
             {"data": {"approved": True, "note": NUL}}),
        Sent("POST", f"/api/v1/executions/{s['waiting']}/cancel", ["reason"],
             {"reason": f"why{NUL}"}),
        Sent("POST", f"/api/v1/entities/{s['kind']}", ["payload", "name"], {"name": NUL}),
        Sent("PATCH", f"/api/v1/entities/{s['kind']}/{s['entity']}", ["payload", "deep", 1],
             {"deep": [1, NUL]}),
        Sent("GET", f"/api/v1/entities/{s['kind']}?filter=" + json.dumps({"a": NUL}),
             ["filter", "a"]),
        Sent("POST", "/api/v1/entity-types", ["name"], {"name": f"K{NUL}"}),
        Sent("POST", "/api/v1/entity-types", ["schema", "title"],
             {"name": "K", "schema": {"title": NUL}}),
        Sent("POST", "/api/v1/job-runs", ["workflows", 0, "input", "who"],
             content=json.dumps(job)),
        Sent("POST", "/api/v1/subscriptions", ["url"], {**sub, "url": f"http://a{NUL}b/"}),
        Sent("POST", "/api/v1/subscriptions", ["workflow"], {**sub, "workflow": NUL}),
        Sent("POST", f"/hooks/{s['hook']}/in", ["body", "a"], {"a": f"x{NUL}"}),
    ]  # fmt: skip


def test_a_nul_anywhere_is_a_422_naming_the_field(service: Service, scene: dict[str, str]) -> None:
    with service.client("admin") as http:
        for sent in _cases(scene):
            kwargs: dict[str, Any] = {"json": sent.json} if sent.json is not None else {}
            if sent.content is not None:
                kwargs = {"content": sent.content, "headers": {"Content-Type": "application/json"}}
            answer = http.request(sent.method, sent.path, **kwargs)
            found = error(answer, 422)
            if found["code"] == "invalid_definition":  # a document's parser: located too
                (problem,) = found["details"]["problems"]
                assert problem["path"] == sent.field and problem["line"] == 1, (sent, found)
            else:
                assert found["details"]["field_path"] == sent.field, (sent, found)
            assert "NUL" in found["message"], found
        # nothing was half-written: the waiting execution still waits, untouched
        assert settled(http, scene["waiting"], 0)["runtimeStatus"] == "AwaitingUserInput"
        hooked = http.get("/api/v1/executions", params={"workflow": scene["hook"]})
        assert hooked.json()["items"] == []


def test_a_nul_in_a_hook_body_that_is_text_is_refused_too(
    service: Service, scene: dict[str, str]
) -> None:
    with httpx.Client(base_url=service.base_url, verify=tls.CONTEXT) as http:
        answer = http.post(
            f"/hooks/{scene['hook']}/in", content=f"a{NUL}b", headers={"Content-Type": "text/plain"}
        )
        assert error(answer, 422)["details"]["field_path"] == ["body"]

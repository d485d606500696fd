"""Cursor paging of every list: newest first, nothing skipped or repeated while others
insert, limit 1-1000 (422 outside), tamper-evident cursors (400)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.conftest import Service
from tests.api.helpers import APPROVAL, FAILING, HELLO, error, push, settled, start, unique

#: What it tests differs between the databases (tests/conftest.py: FACE_TESTS).
pytestmark = pytest.mark.both_databases


@dataclass(frozen=True)
class Listing:
    """A list route, how to add one item to it (its key), and an item's key."""

    path: str
    add: Callable[[httpx.Client, str], str]
    key: str = "id"


def _workflow(http: httpx.Client, scope: str) -> str:
    return push(http, HELLO)


def _execution(http: httpx.Client, scope: str) -> str:
    return str(start(http, scope, {"who": "x"})["id"])


def _entity_type(http: httpx.Client, scope: str) -> str:
    name = unique("Kind").replace("-", "")
    assert http.post("/api/v1/entity-types", json={"name": name}).status_code == 201
    return name


def _entity(http: httpx.Client, scope: str) -> str:
    answer = http.post(f"/api/v1/entities/{scope}", json={"n": 1})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _job_run(http: httpx.Client, scope: str) -> str:
    job = f"name: paged\nworkflows:\n  - {{workflow: {scope}, input: {{who: A}}}}\n"
    answer = http.post("/api/v1/job-runs", content=job)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _subscription(http: httpx.Client, scope: str) -> str:
    spec = {"url": "http://127.0.0.1:9/x", "events": ["execution.failed"], "workflow": scope}
    answer = http.post("/api/v1/subscriptions", json=spec)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


LISTINGS = {
    "workflows": Listing("/api/v1/workflows", _workflow, "name"),
    "executions": Listing("/api/v1/executions", _execution),
    "entity-types": Listing("/api/v1/entity-types", _entity_type, "name"),
    "entities": Listing("/api/v1/entities/{scope}", _entity),
    "job-runs": Listing("/api/v1/job-runs", _job_run),
    "workflow-runs": Listing("/api/v1/workflow-runs", _execution),
    "subscriptions": Listing("/api/v1/subscriptions", _subscription),
}


def _scope(http: httpx.Client, kind: str) -> str:
    """What the items of this test hang on: a pushed workflow, or an entity type."""
    if kind == "entities":
        return _entity_type(http, "")
    return push(http, HELLO)


def _pages(http: httpx.Client, path: str, params: dict[str, Any]) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor = None
    while True:
        answer = http.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["items"])
        cursor = body["nextCursor"]
        if cursor is None:
            return pages


@pytest.mark.parametrize("kind", LISTINGS)
def test_pages_are_newest_first_and_stable_while_others_insert(service: Service, kind: str) -> None:
    listing = LISTINGS[kind]
    with service.client("admin") as http:
        scope = _scope(http, kind)
        path = listing.path.format(scope=scope)
        made = [listing.add(http, scope) for _ in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            answer = http.get(path, params=params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert len(body["items"]) <= 2
            seen += [item[listing.key] for item in body["items"]]
            listing.add(http, scope)  # newer: sorts before the cursor, never shown now
            cursor = body["nextCursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)), "an item was shown twice"
    assert [key for key in seen if key in made] == list(reversed(made))


@pytest.mark.parametrize("kind", LISTINGS)
def test_limits_and_forged_cursors(service: Service, kind: str) -> None:
    listing = LISTINGS[kind]
    with service.client("admin") as http:
        scope = _scope(http, kind)
        path = listing.path.format(scope=scope)
        for _ in range(3):
            listing.add(http, scope)
        for bad in (0, 1001, -1):
            assert error(http.get(path, params={"limit": bad}), 422)["details"]
        assert len(http.get(path, params={"limit": 1000}).json()["items"]) >= 3
        cursor = http.get(path, params={"limit": 1}).json()["nextCursor"]
        assert cursor
        head, _, mac = cursor.partition(".")
        payload = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        edited = base64.urlsafe_b64encode(payload.replace(b'"i":"', b'"i":"0')).rstrip(b"=")
        # Two other last characters (the same two would give the cursor back, 1 in 4,096).
        resigned = cursor[:-2] + ("yy" if cursor.endswith("xx") else "xx")
        for forged in (f"{edited.decode()}.{mac}", resigned, "garbage", cursor + "."):
            found = error(http.get(path, params={"cursor": forged}), 400)
            assert found["code"] == "invalid_cursor"
            assert found["details"]["field_path"] == ["cursor"]
        other = "/api/v1/job-runs" if kind != "job-runs" else "/api/v1/workflows"
        assert error(http.get(other, params={"cursor": cursor}), 400)["code"] == "invalid_cursor"


def test_execution_cursors_belong_to_their_filters(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HELLO)
        for i in range(3):
            start(http, name, {"who": str(i)})
        cursor = http.get("/api/v1/executions", params={"workflow": name, "limit": 1}).json()[
            "nextCursor"
        ]
        other = http.get(
            "/api/v1/executions", params={"workflow": name, "status": "Failed", "cursor": cursor}
        )
        assert error(other, 400)["details"]["field_path"] == ["cursor"]


def test_entities_ordered_by_fields_page_to_the_end(service: Service) -> None:
    with service.client("admin") as http:
        kind = _entity_type(http, "")
        path = f"/api/v1/entities/{kind}"
        for score in (3, 1, 2, 5, 4):
            assert http.post(path, json={"Score": score}).status_code == 201
        pages = _pages(http, path, {"orderBy": "-Score", "limit": 2})
        assert [[e["payload"]["Score"] for e in p] for p in pages] == [[5, 4], [3, 2], [1]]
        first = http.get(path, params={"orderBy": "-Score", "limit": 2}).json()
        assert first["totalCount"] == 5 and first["hasMore"] is True
        moved = http.get(path, params={"orderBy": "Score", "cursor": first["nextCursor"]})
        assert error(moved, 400)["code"] == "invalid_cursor"
        bad = http.get(path, params={"orderBy": "Score,Sc;ore"})
        assert error(bad, 422)["details"]["field_path"] == ["orderBy", 1]


def test_artifacts_page_newest_first(service: Service) -> None:
    steps = [
        {
            "id": f"save{i}",
            "type": "sys.http_request",
            "after": [f"save{i - 1}"] if i else [],
            "input": {
                "url": f"{service.base_url}/healthz",
                "save_as": "artifact",
                "artifact_name": f"a{i}.json",
            },
        }
        for i in range(3)
    ]
    definition = json.dumps({"name": "{name}", "steps": steps})
    with service.client("admin") as http:
        name = push(
            http, definition.replace("{", "{{").replace("}", "}}").replace("{{name}}", "{name}")
        )
        doc = settled(http, start(http, name)["id"])
        assert doc["runtimeStatus"] == "Completed", doc
        for path, params in (
            (f"/api/v1/executions/{doc['id']}/artifacts", {"limit": 1}),
            ("/api/v1/artifacts", {"limit": 1, "workflowRunId": doc["id"]}),
        ):
            pages = _pages(http, path, params)
            assert [[a["name"] for a in p] for p in pages] == [
                ["a2.json"],
                ["a1.json"],
                ["a0.json"],
            ]
            error(http.get(path, params={**params, "limit": 0}), 422)
        cursor = http.get(path, params=params).json()["nextCursor"]
        other = http.get(f"/api/v1/executions/{start(http, name)['id']}/artifacts",
                         params={"cursor": cursor})  # fmt: skip
        assert error(other, 400)["code"] == "invalid_cursor"


def test_executions_of_any_of_several_statuses(service: Service) -> None:
    """``status`` repeated, or separated by commas, selects any of them (one value only
    was kept before: a silent wrong answer); an unknown one is named."""
    tag = unique("any")
    with service.client("admin") as http:
        made = {}
        for template in (HELLO, APPROVAL, FAILING):
            name = push(http, template)
            answer = http.post(
                f"/api/v1/workflows/{name}/executions",
                json={"input": {"who": "x"} if template is HELLO else {}, "correlationId": tag},
            )
            assert answer.status_code == 201, answer.text
            doc = settled(http, answer.json()["id"])
            made[doc["runtimeStatus"]] = doc["id"]
        assert set(made) == {"Completed", "AwaitingUserInput", "Failed"}

        def listed(params: list[tuple[str, str]]) -> set[str]:
            answer = http.get("/api/v1/executions", params=[("correlationId", tag), *params])
            assert answer.status_code == 200, answer.text
            return {item["id"] for item in answer.json()["items"]}

        wanted = {made["Failed"], made["AwaitingUserInput"]}
        assert listed([("status", "Failed"), ("status", "AwaitingUserInput")]) == wanted
        assert listed([("status", "Failed,AwaitingUserInput")]) == wanted
        assert listed([("status", "Completed")]) == {made["Completed"]}
        page = http.get(
            "/api/v1/executions",
            params=[
                ("correlationId", tag),
                ("status", "Failed"),
                ("status", "Completed"),
                ("limit", "1"),
            ],
        ).json()
        rest = http.get(
            "/api/v1/executions",
            params=[
                ("correlationId", tag),
                ("status", "Failed"),
                ("status", "Completed"),
                ("cursor", page["nextCursor"]),
            ],
        ).json()
        assert {i["id"] for i in page["items"] + rest["items"]} == {
            made["Failed"],
            made["Completed"],
        }
        bad = error(
            http.get("/api/v1/executions", params=[("status", "Failed"), ("status", "Nope")]), 422
        )
        assert bad["details"]["field_path"] == ["status"] and '"Nope"' in bad["message"]

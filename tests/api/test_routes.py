"""Every route of the core API over a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.api.conftest import Service
from tests.api.helpers import (
    APPROVAL,
    FAILING,
    HELLO,
    error,
    push,
    settled,
    start,
    terminal,
    unique,
)
from tests.raw_sql import run_sql

JSON = {"Content-Type": "application/json"}


def test_push_list_show_and_versions(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HELLO)
        again = http.post(
            "/api/v1/workflows",
            content=json.dumps(
                {
                    "name": name,
                    "steps": [{"id": "greet", "type": "sys.transform", "input": {"value": 1}}],
                }
            ),
            headers={"Content-Type": "application/json"},
        )
        assert again.status_code == 201
        assert again.json()["version"] == 2 and again.json()["changed"] is True
        same = http.post("/api/v1/workflows", content=again.request.content, headers=JSON)
        assert same.status_code == 201  # SPEC: 201; `changed` says nothing was stored
        assert same.json() == {**again.json(), "changed": False}
        listed = http.get("/api/v1/workflows").json()
        assert listed["items"][0]["name"] == name  # newest (first pushed) first
        detail = http.get(f"/api/v1/workflows/{name}").json()
        assert [v["version"] for v in detail["versions"]] == [1, 2]
        assert detail["live"]["version"] == 2
        first = http.get(f"/api/v1/workflows/{name}/versions/1").json()
        assert first["document"]["name"] == name and first["live"] is False
        error(http.get(f"/api/v1/workflows/{name}/versions/9"), 404)
        error(http.get("/api/v1/workflows/no-such-workflow"), 404)


def test_a_deleted_workflow_does_not_start_by_name(service: Service) -> None:
    """``DELETE ?force=true`` left ``live: null`` and the workflow out of lists, yet a
    start by name ran its newest stored version (201)."""
    with service.client("admin") as http:
        name = push(http, HELLO)
        assert http.delete(f"/api/v1/workflows/{name}", params={"force": "true"}).status_code == 200
        url = f"/api/v1/workflows/{name}/executions"
        refused = error(http.post(url, json={"input": {"who": "A"}}), 404)
        assert refused["code"] == "not_found"
        assert refused["message"].startswith(f"workflow {name!r} is not pushed: it was deleted")
        assert http.get("/api/v1/executions", params={"workflow": name}).json()["items"] == []
        pinned = http.post(url, json={"input": {"who": "A"}, "version": 1})
        assert pinned.status_code == 201, pinned.text  # a stored version, named by number


def test_likely_typos_are_taken_with_warnings(service: Service) -> None:
    name, kind = unique("wf"), unique("Ghost").replace("-", "")
    ghostly = f"name: {name}\ntriggers: [{{type: entity, entity_type: {kind}}}]\n" + (
        "steps: [{id: a, type: sys.transform, input: {value: 1}}]\n"
    )
    with service.client("admin") as http:
        pushed = http.post("/api/v1/workflows", content=ghostly)
        assert pushed.status_code == 201, pushed.text
        assert pushed.json()["warnings"] == [
            f"triggers[0]: no entity type {kind!r} exists yet; the trigger fires once it is created"
        ]
        body = {"url": "https://example.com/in", "events": ["execution.failed"]}
        typo = http.post("/api/v1/subscriptions", json={**body, "workflow": unique("nosuch")})
        assert typo.status_code == 201, typo.text
        (warning,) = typo.json()["warnings"]
        assert warning.startswith("workflow: no workflow named 'nosuch-")
        known = http.post("/api/v1/subscriptions", json={**body, "workflow": name})
        assert known.status_code == 201 and known.json()["warnings"] == []


def test_an_invalid_definition_is_422_with_its_problems(service: Service) -> None:
    text = "name: broken\nsteps:\n  - id: a\n    type: sys.nope\n"
    with service.client("admin") as http:
        found = error(http.post("/api/v1/workflows", content=text), 422)
    assert found["code"] == "invalid_definition"
    problem = found["details"]["problems"][0]
    assert problem["line"] == 4 and problem["step"] == "a"


def test_bodies_that_are_not_utf8_are_422_naming_what(service: Service) -> None:
    with service.client("admin") as http:
        definition = error(http.post("/api/v1/workflows", content=b"name: \xff"), 422)
        job = error(http.post("/api/v1/job-runs", content=b"name: \xff"), 422)
    assert definition["message"] == "the definition (YAML or JSON) must be UTF-8 text"
    assert job["message"] == "the job-run document must be UTF-8 text"


def test_start_runs_on_the_workers_and_records_the_token(service: Service) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        doc = start(http, name, {"who": "Ada"})
        assert doc["createdBy"] == "api-token:t-operator"
        assert doc["runtimeStatus"] in ("NotStarted", "InProgress", "Completed")
        done = settled(http, doc["id"])
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == {"greeting": "Hello, Ada!"}


def test_a_start_with_an_idempotency_key_starts_once(service: Service) -> None:
    """A client that retries a start it never heard back from (a timeout) gets the
    execution its first try started, not a second one."""
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        url = f"/api/v1/workflows/{name}/executions"
        key = {"Idempotency-Key": unique("order")}
        first = http.post(url, json={"input": {"who": "Ada"}}, headers=key)
        again = http.post(url, json={"input": {"who": "Ada"}}, headers=key)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json()["id"] == first.json()["id"]
        other = error(http.post(url, json={"input": {"who": "Bob"}}, headers=key), 409)
        assert first.json()["id"] in other["message"]
        # Another correlationId answered the first execution, filed under none (tour 22C F3).
        filed = {"input": {"who": "Ada"}, "correlationId": "cid-different"}
        moved = error(http.post(url, json=filed, headers=key), 409)
        assert "with no correlation id, not correlation id 'cid-different'" in moved["message"]
        fresh = http.post(url, json={"input": {"who": "Ada"}}, headers={"Idempotency-Key": "2"})
        assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()["items"]
        assert len(listed) == 2
        long_key = {"Idempotency-Key": "k" * 161}
        too_long = error(http.post(url, json={"input": {"who": "Ada"}}, headers=long_key), 422)
        # Named as the client sent it, a header (it said "idempotencyKey", a body field).
        assert too_long["message"] == "Idempotency-Key: must have at most 160 characters, not 161"
        assert too_long["details"]["field_path"] == ["Idempotency-Key"]
        # In words: it showed the pattern, ^[\x20-\x7e]+$ (a header's bytes are Latin-1).
        latin = {"Idempotency-Key": "café".encode("latin-1")}
        odd = error(http.post(url, json={"input": {"who": "Ada"}}, headers=latin), 422)
        assert odd["message"] == (
            "Idempotency-Key: may hold only printable ASCII characters (letters, digits, "
            'punctuation and spaces); "é" is not one'
        )
        # Two keys: the first was taken silently; now neither, and nothing starts.
        two = [("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-2")]
        found = error(http.post(url, json={"input": {"who": "Ada"}}, headers=two), 400)
        assert found["code"] == "repeated_header"
        assert found["message"] == "headers.Idempotency-Key: sent 2 times; send the header once"
        assert found["details"]["field_path"] == ["headers", "Idempotency-Key"]
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()["items"]
        assert len(listed) == 2


def test_start_refuses_bad_input_names_and_files(service: Service) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        url = f"/api/v1/workflows/{name}/executions"
        missing = error(http.post(url, json={"input": {}}), 422)
        assert missing["code"] == "invalid_input"
        assert missing["details"]["problems"] == [
            {"field_path": ["input"], "field": "input", "message": "'who' is a required property"}
        ]
        wrong = error(http.post(url, json={"input": {"who": 5}}), 422)["details"]["problems"]
        assert [(p["field"], p["message"]) for p in wrong] == [
            ("input.who", "5 is not of type 'string'")
        ]
        cut = error(http.post(url, content=b'{"input": {', headers=JSON), 400)  # malformed
        assert cut["code"] == "invalid_json"
        assert cut["message"].startswith("the request body is not valid JSON at character 11: ")
        assert cut["details"]["field_path"] == []
        # NaN and Infinity are no JSON: malformed too, where they were a 422 naming no field.
        for constant in ("NaN", "Infinity", "-Infinity"):
            text = b'{"input": {"who": %s}}' % constant.encode()
            found = error(http.post(url, content=text, headers=JSON), 400)
            assert (found["code"], found["message"]) == (
                "invalid_json",
                f"the request body is not valid JSON: {constant} is not a JSON number",
            )
        # A number too large for a float was read as infinity: a 422 naming no field.
        huge = error(http.post(url, content=b'{"input": {"who": 1e999}}', headers=JSON), 400)
        assert (huge["code"], huge["message"]) == (
            "invalid_json",
            "the request body is not valid JSON: the number 1e999 is too large",
        )
        assert error(http.post(url, json={"input": 3}), 422)["details"]["field_path"] == ["input"]
        error(http.post(url, json={"input": {"who": "x"}, "version": 7}), 404)
        # The body's own model read true as 1, out of the request's sight: version 1 ran.
        boolean = error(http.post(url, json={"input": {"who": "x"}, "version": True}), 422)
        assert boolean["message"] == (
            'version: must be a version number (an integer) or "latest" (the pushed version), '
            "not true"
        )
        error(http.post(url, json={"bogus": 1}), 422)
        error(http.post("/api/v1/workflows/examples%2Fhello.yaml/executions", json={}), 404)
        error(http.post("/api/v1/workflows/hello.yaml/executions", json={}), 404)


def test_a_json_body_that_is_not_utf8_is_invalid_json_in_words(service: Service) -> None:
    """Bytes that are not UTF-8 sent as JSON were ``http_400 "There was an error parsing
    the body"`` with no details; every other malformed body is ``invalid_json`` naming
    what is wrong. Whatever the route or the charset claimed (a compressed body is a 415:
    tests/api/test_edge.py)."""
    latin = '{"input": {"who": "\xe9"}}'.encode("latin-1")
    with service.client("admin") as http:
        name = push(http, APPROVAL)
        waiting = settled(http, start(http, name)["id"])["id"]
        cases = [
            (f"/api/v1/workflows/{name}/executions", latin, {}),
            (f"/api/v1/workflows/{name}/executions", latin, {"Content-Type": "application/json; charset=iso-8859-1"}),
            ("/api/v1/entities/Lead", b'{"Name": "\xe9"}', {}),
            ("/api/v1/entity-types", b'{"name": "L\xe9ad"}', {}),
            ("/api/v1/subscriptions", b'{"url": "https://example.com/\xe9"}', {}),
            (f"/api/v1/executions/{waiting}/cancel", b'{"reason": "\xe9"}', {}),
        ]  # fmt: skip
        for url, body, headers in cases:
            answer = http.post(url, content=body, headers={**JSON, **headers})
            found = error(answer, 400)
            byte = next(b for b in body if b >= 0x80)
            at = body.index(byte)
            assert (found["code"], found["message"]) == (
                "invalid_json",
                f"the request body is not valid JSON: it is not UTF-8 text (byte 0x{byte:02x} "
                f"at position {at}); send JSON as UTF-8",
            ), url
            assert found["details"]["field_path"] == [] and found["details"]["problems"]
        assert settled(http, waiting)["runtimeStatus"] == "AwaitingUserInput"  # not cancelled
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()
        assert [e["id"] for e in listed["items"]] == [waiting]


def test_a_null_body_starts_nothing_and_no_body_starts_without_input(service: Service) -> None:
    """A JSON null as the body started an execution with no input, as if none was sent."""
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, FAILING)  # no input_schema: any input, or none, starts it
        url = f"/api/v1/workflows/{name}/executions"
        found = error(http.post(url, content=b"null", headers=JSON), 422)
        assert (found["code"], found["message"]) == (
            "invalid_input",
            "the body must be a JSON object, not null",
        )
        assert http.get("/api/v1/executions", params={"workflow": name}).json()["items"] == []
        started = http.post(url)
        assert started.status_code == 201, started.text
        assert started.json()["trigger"]["arguments"] == {}


def test_list_filters_and_get(service: Service) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        correlation = unique("corr")
        answer = http.post(
            f"/api/v1/workflows/{name}/executions",
            json={"input": {"who": "Bo"}, "correlationId": correlation},
        )
        doc = answer.json()
        found = http.get("/api/v1/executions", params={"correlationId": correlation}).json()
        assert [d["id"] for d in found["items"]] == [doc["id"]]
        by_workflow = http.get("/api/v1/executions", params={"workflow": name}).json()
        assert [d["id"] for d in by_workflow["items"]] == [doc["id"]]
        mine = http.get(
            "/api/v1/executions", params={"createdBy": "api-token:t-operator", "limit": 1000}
        ).json()
        assert doc["id"] in [d["id"] for d in mine["items"]]
        settled(http, doc["id"])
        done = http.get("/api/v1/executions", params={"workflow": name, "status": "Completed"})
        assert [d["id"] for d in done.json()["items"]] == [doc["id"]]
        after = http.get(
            "/api/v1/executions", params={"workflow": name, "createdAfter": "2999-01-01T00:00:00Z"}
        )
        assert after.json()["items"] == []
        assert error(http.get("/api/v1/executions", params={"status": "Bogus"}), 422)
        said = error(http.get("/api/v1/executions", params={"createdAfter": "yesterday"}), 422)
        assert said["message"].startswith("createdAfter: must be a time (2026-11-29T10:00:00Z)")
        error(http.get("/api/v1/executions/no-such-id"), 404)
        error(http.get(f"/api/v1/executions/{doc['id']}", params={"wait": 61}), 422)


KID = """
name: {name}
steps:
  - {{id: a, type: sys.transform, input: {{value: 1}}}}
"""
PARENT = """
name: {name}
steps:
  - {{id: kid, type: sys.sub_workflow, input: {{workflow: {name}-kid}}}}
"""


def test_top_level_lists_only_executions_without_a_parent(service: Service) -> None:
    """The web list could leave sub-workflows' children out; the API could not."""
    with service.client("admin") as admin, service.client("viewer") as http:
        parent = unique("parent")
        kid = push(admin, KID, f"{parent}-kid")
        push(admin, PARENT, parent)
        above = terminal(admin, start(admin, parent)["id"])
        alone = terminal(admin, start(admin, kid)["id"])  # the child's workflow, started
        assert (above["runtimeStatus"], alone["runtimeStatus"]) == ("Completed", "Completed")

        def ids(**params: object) -> list[str]:
            answer = http.get("/api/v1/executions", params=params)
            assert answer.status_code == 200, answer.text
            assert set(answer.json()) == {"items", "nextCursor"}  # SPEC's shape, as ever
            return [d["id"] for d in answer.json()["items"]]

        [child] = ids(parentId=above["id"])
        assert ids(workflow=kid) == [alone["id"], child]
        assert ids(workflow=kid, topLevel="true") == [alone["id"]]
        assert ids(workflow=kid, topLevel="false") == [alone["id"], child]
        assert ids(workflow=parent, topLevel="true") == [above["id"]]

        said = error(http.get("/api/v1/executions", params={"topLevel": "maybe"}), 422)
        assert said["details"]["field_path"] == ["topLevel"]
        assert said["message"] == 'topLevel: must be true or false, not "maybe"'
        both = error(
            http.get("/api/v1/executions", params={"topLevel": "true", "parentId": child}), 422
        )
        assert "give a parent or top-level only, not both" in both["message"]
        # A page's cursor belongs to its filters, topLevel too.
        first = http.get("/api/v1/executions", params={"topLevel": "true", "limit": 1}).json()
        other = http.get("/api/v1/executions", params={"cursor": first["nextCursor"]})
        assert error(other, 400)["code"] == "invalid_cursor"


def test_include_total_adds_how_many_the_filters_select(service: Service) -> None:
    with service.client("admin") as admin, service.client("viewer") as http:
        parent = unique("counted")
        kid = push(admin, KID, f"{parent}-kid")
        push(admin, PARENT, parent)
        terminal(admin, start(admin, parent)["id"])
        terminal(admin, start(admin, kid)["id"])
        asked = {"workflow": kid, "limit": 1, "includeTotal": "true"}
        first = http.get("/api/v1/executions", params=asked).json()
        assert set(first) == {"items", "nextCursor", "total"}
        assert (len(first["items"]), first["total"]) == (1, 2)
        rest = http.get("/api/v1/executions", params={**asked, "cursor": first["nextCursor"]})
        assert (len(rest.json()["items"]), rest.json()["total"]) == (1, 2)
        top = http.get("/api/v1/executions", params={**asked, "topLevel": "true"}).json()
        assert top["total"] == 1
        none = http.get("/api/v1/executions", params={**asked, "status": "Cancelled"})
        assert none.json() == {"items": [], "nextCursor": None, "total": 0}
        plain = http.get("/api/v1/executions", params={"workflow": kid, "includeTotal": "false"})
        assert set(plain.json()) == {"items", "nextCursor"}
        said = error(http.get("/api/v1/executions", params={"includeTotal": "2"}), 422)
        assert said["details"]["field_path"] == ["includeTotal"]


def test_input_cancel_and_conflicts(service: Service) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, APPROVAL)
        doc = settled(http, start(http, name)["id"])
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        url = f"/api/v1/executions/{doc['id']}/steps/approve/input"
        refused = error(http.post(url, json={"data": {"approved": "yes"}}), 422)
        assert [p["field_path"] for p in refused["details"]["problems"]] == [["data", "approved"]]
        assert "(it keeps waiting): data.approved: 'yes' is not of type" in refused["message"]
        error(http.post(f"/api/v1/executions/{doc['id']}/steps/nope/input", json={}), 404)
        answer = http.post(url, json={"data": {"approved": True}})
        # The state after the change (its worker acted at once), not the one before it.
        assert answer.status_code == 200, answer.text
        assert answer.json()["runtimeStatus"] == "Completed", answer.json()
        assert "pendingSignals" not in answer.json()
        assert terminal(http, doc["id"])["runtimeStatus"] == "Completed"
        assert error(http.post(f"/api/v1/executions/{doc['id']}/cancel"), 409)["code"] == "conflict"
        error(http.post(f"/api/v1/executions/{doc['id']}/retry"), 409)
        waiting = settled(http, start(http, name)["id"])
        cancelled = http.post(f"/api/v1/executions/{waiting['id']}/cancel", json={"reason": "no"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["runtimeStatus"] == "Cancelled", cancelled.json()
        assert terminal(http, waiting["id"])["runtimeStatus"] == "Cancelled"
        error(http.post("/api/v1/executions/no-such-id/cancel"), 404)


def test_retry_a_failed_execution(service: Service) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, FAILING)
        doc = settled(http, start(http, name)["id"])
        assert doc["runtimeStatus"] == "Failed"
        answer = http.post(f"/api/v1/executions/{doc['id']}/retry")
        assert answer.status_code == 200, answer.text
        # The execution, as a cancel answers it, and what was started again.
        assert answer.json()["retriedSteps"] == ["boom"]
        assert answer.json()["id"] == doc["id"]
        assert answer.json()["runtimeStatus"] in ("InProgress", "Failed")
        assert settled(http, doc["id"])["runtimeStatus"] == "Failed"


TWO_STEPS = """
name: {name}
steps:
  - {{id: first, type: sys.transform, input: {{value: 1}}}}
  - {{id: second, type: sys.transform, input: {{value: "{{{{ steps.first.output }}}}+1"}}}}
  - id: each
    type: sys.loop
    input: {{items: [1]}}
    steps: [{{id: inside, type: sys.no_action}}]
"""


def test_rerun_an_ended_execution_from_a_step(service: Service) -> None:
    """The CLI's `executions rerun ID --from STEP_ID [--version pinned|latest]` had no
    route: POST …/rerun answers 201 with the new execution, with the CLI's refusals."""
    with (
        service.client("admin") as admin,
        service.client("operator") as http,
        service.client("viewer") as viewer,
    ):
        name = push(admin, TWO_STEPS)
        done = settled(http, start(http, name)["id"])
        assert done["runtimeStatus"] == "Completed", done
        url = f"/api/v1/executions/{done['id']}/rerun"
        answer = http.post(url, json={"fromStep": "second"})
        assert answer.status_code == 201, answer.text
        new = answer.json()
        assert (new["rerunOf"], new["workflowName"]) == (done["id"], name)
        assert new["createdBy"] == "api-token:t-operator"
        again = settled(http, new["id"])
        assert again["runtimeStatus"] == "Completed", again
        events = http.get(f"/api/v1/executions/{new['id']}/events").json()
        assert [e["stepId"] for e in events if e["kind"] == "step.reused"] == ["first"]
        latest = http.post(url, json={"fromStep": "second", "version": "latest"})
        assert latest.status_code == 201, latest.text
        # The CLI's refusals, each with its status.
        unknown = error(http.post(url, json={"fromStep": "secnd"}), 404)
        assert "has no step 'secnd'; did you mean 'second'?" in unknown["message"]
        looped = error(http.post(url, json={"fromStep": "inside"}), 422)
        assert "rerun from the loop step 'each'" in looped["message"]
        missing = error(http.post(url, json={}), 422)
        assert missing["details"]["field_path"] == ["fromStep"]
        version = error(http.post(url, json={"fromStep": "first", "version": "v2"}), 422)
        assert version["details"]["field_path"] == ["version"]
        error(http.post("/api/v1/executions/no-such-id/rerun", json={"fromStep": "a"}), 404)
        error(viewer.post(url, json={"fromStep": "second"}), 403)
        keyed = http.post(url, json={"fromStep": "second"}, headers={"Idempotency-Key": "k1"})
        assert error(keyed, 422)["details"]["field_path"] == ["Idempotency-Key"]
        waiting = settled(http, start(http, push(admin, APPROVAL))["id"])
        assert waiting["runtimeStatus"] == "AwaitingUserInput"
        busy = f"/api/v1/executions/{waiting['id']}/rerun"
        refused = error(http.post(busy, json={"fromStep": "approve"}), 409)
        assert "is AwaitingUserInput: only an ended execution is rerun" in refused["message"]
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()["items"]
        assert len(listed) == 3  # the original and two reruns: no refusal started one


def _at_once(service: Service, requests: list[tuple[str, dict[str, object]]]) -> list[int]:
    """POST each ``(url, json)`` together, each on a connection of its own; the statuses."""

    def post(request: tuple[str, dict[str, object]]) -> int:
        with service.client("operator") as http:
            answer = http.post(request[0], json=request[1])
            assert answer.status_code < 500, answer.text
            return answer.status_code

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(post, requests))


def test_parallel_retries_one_wins_the_others_are_409(service: Service) -> None:
    """Retries took the lease as this process, so a second one took it from under the
    first, whose write failed as storage_unavailable (503): now the one holding it wins, the
    others are 409. Cancels and inputs at once were already 200 or 409."""
    with service.client("admin") as admin, service.client("operator") as http:
        failing, waiting = push(admin, FAILING), push(admin, APPROVAL)
        for _ in range(4):
            execution_id = settled(http, start(http, failing)["id"])["id"]
            url = f"/api/v1/executions/{execution_id}/retry"
            statuses = _at_once(service, [(url, {})] * 4)
            assert set(statuses) <= {200, 409} and 200 in statuses
            assert settled(http, execution_id)["runtimeStatus"] == "Failed"
            # Each 200 re-opened it once (one that came after another had failed it again
            # may win too, on a slow machine).
            events = http.get(f"/api/v1/executions/{execution_id}/events").json()
            assert [e["kind"] for e in events].count("execution.retried") == statuses.count(200)
        for _ in range(2):
            execution_id = settled(http, start(http, waiting)["id"])["id"]
            cancel = (f"/api/v1/executions/{execution_id}/cancel", {})
            give = (f"/api/v1/executions/{execution_id}/steps/approve/input", {"data": {"approved": True}})  # fmt: skip
            assert set(_at_once(service, [cancel, give] * 2)) <= {200, 409}
            assert terminal(http, execution_id)["runtimeStatus"] in ("Cancelled", "Completed")


def test_artifacts_list_and_download(service: Service) -> None:
    template = f"""
    name: {{name}}
    steps:
      - id: fetch
        type: sys.http_request
        input:
          url: "{service.base_url}/healthz"
          save_as: artifact
          artifact_name: health.json
    """
    with service.client("admin") as admin, service.client("viewer") as http:
        name = push(admin, textwrap.dedent(template))
        doc = settled(admin, start(admin, name)["id"])
        assert doc["runtimeStatus"] == "Completed", doc
        listed = http.get(f"/api/v1/executions/{doc['id']}/artifacts").json()["items"]
        assert [a["name"] for a in listed] == ["health.json"]
        seed = http.get("/api/v1/artifacts", params={"workflowRunId": doc["id"]}).json()
        assert seed["items"] == listed
        body = http.get(f"/api/v1/artifacts/{listed[0]['id']}")
        assert body.status_code == 200
        assert hashlib.sha256(body.content).hexdigest() == listed[0]["sha256"]
        assert json.loads(body.content) == {"status": "ok"}
        error(http.get("/api/v1/artifacts/no-such-artifact"), 404)
        error(http.get("/api/v1/executions/no-such-id/artifacts"), 404)
        error(http.get("/api/v1/artifacts"), 422)


@pytest.mark.parametrize("how", ["symlink", "fifo", "other bytes"])
def test_a_damaged_artifact_file_is_a_500_in_the_clis_words(
    service: Service, tmp_path: Path, how: str
) -> None:
    """A file replaced (a symlink to the same bytes elsewhere, a FIFO) or changed was a 503
    with Retry-After, a retry that never succeeds, and the CLI said "does not exist" of
    a FIFO; now both say it is damaged or was replaced, in the same words."""
    template = f"""
    name: {{name}}
    steps:
      - id: fetch
        type: sys.http_request
        input: {{{{url: "{service.base_url}/healthz", save_as: artifact}}}}
    """
    with service.client("admin") as admin, service.client("viewer") as http:
        doc = settled(admin, start(admin, push(admin, textwrap.dedent(template)))["id"])
        assert doc["runtimeStatus"] == "Completed", doc
        (artifact,) = http.get(f"/api/v1/executions/{doc['id']}/artifacts").json()["items"]
        path = Path(service.env["FLOWLEDGER_ARTIFACTS"]) / doc["id"] / artifact["id"]
        data = path.read_bytes()
        path.unlink()
        if how == "symlink":
            (tmp_path / "copy").write_bytes(data)
            path.symlink_to(tmp_path / "copy")
        elif how == "fifo":
            os.mkfifo(path)
        else:
            path.write_bytes(data.upper())
        answer = http.get(f"/api/v1/artifacts/{artifact['id']}")
        refused = error(answer, 500)
        assert refused["code"] == "artifact_damaged" and "retry-after" not in answer.headers
        assert refused["message"].startswith(
            f"artifact {artifact['name']!r} ({artifact['id']}) is damaged or was replaced: "
            f"its file {path} "
        )
        cli = service.cli_in_process(
            "executions", "artifacts", doc["id"], "--download", str(tmp_path / "d")
        )
        assert cli.returncode == 1, cli.stdout
        assert cli.stderr.strip() == f"error: {refused['message']}"


def test_artifact_names_beyond_latin_1_download(service: Service) -> None:
    """A name the header cannot carry as it is (not Latin-1; or, stored by an older
    version, a quote, ``;``, CR/LF) downloads under RFC 6266: the exact name in
    ``filename*``, a harmless ASCII one in ``filename`` (it was a text/plain 500)."""
    names = ["文件.txt", "étrange.html", "ok (1)+x=y@z.json"]
    steps = "".join(
        f"""
      - id: s{i}
        type: sys.http_request
        input: {{{{url: "{service.base_url}/healthz", save_as: artifact, artifact_name: "{n}"}}}}"""
        for i, n in enumerate(names)
    )
    with service.client("admin") as admin, service.client("viewer") as http:
        name = push(admin, "name: {name}\nsteps:" + steps + "\n")
        doc = settled(admin, start(admin, name)["id"])
        assert doc["runtimeStatus"] == "Completed", doc
        listed = http.get(f"/api/v1/executions/{doc['id']}/artifacts").json()["items"]
        by_name = {a["name"]: a["id"] for a in listed}
        assert sorted(by_name) == sorted(names)
        forged = 'say "hi";\r\nX-Evil: 1\\.txt'
        run_sql(
            service.db_url,
            "UPDATE artifacts SET name = :name WHERE id = :id",
            name=forged,
            id=by_name.pop("ok (1)+x=y@z.json"),
        )
        by_name = {
            a["name"]: a["id"]
            for a in http.get(f"/api/v1/executions/{doc['id']}/artifacts").json()["items"]
        }
        expected = {
            "文件.txt": ("__.txt", "%E6%96%87%E4%BB%B6.txt"),
            "étrange.html": ("_trange.html", "%C3%A9trange.html"),
            forged: ("say _hi____X-Evil: 1_.txt", "say%20%22hi%22%3B%0D%0AX-Evil%3A%201%5C.txt"),
        }
        for stored, (fallback, encoded) in expected.items():
            answer = http.get(f"/api/v1/artifacts/{by_name[stored]}")
            assert answer.status_code == 200, answer.text
            assert json.loads(answer.content) == {"status": "ok"}
            assert answer.headers["content-disposition"] == (
                f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
            )
            assert "x-evil" not in answer.headers


def test_events_after_a_position_past_32_bits_are_none(service: Service) -> None:
    """``events.seq`` is a 32-bit integer on PostgreSQL: ``?after=2147483648`` was a 500
    there (SQLite answered []), and ``executions events --after`` said to upgrade the
    database. A position past every event has nothing after it, on both."""
    with service.client("admin") as http:
        execution_id = settled(http, start(http, push(http, HELLO), {"who": "A"})["id"])["id"]
        url = f"/api/v1/executions/{execution_id}/events"
        for after in (2**31, 2**63 - 1):
            answer = http.get(url, params={"after": after})
            assert answer.status_code == 200, answer.text
            assert answer.json() == []
            streamed = http.get(
                url, params={"after": after}, headers={"Accept": "text/event-stream"}
            )
            assert streamed.status_code == 204, streamed.text  # ended: nothing to stream
        assert error(http.get(url, params={"after": 2**63}), 422)["details"]["field"] == "after"
    listed = service.cli_in_process(
        "executions", "events", execution_id, "--after", str(2**31), "--json"
    )
    assert listed.returncode == 0 and listed.stdout == "", listed.stderr


def test_job_runs(service: Service) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        job = f"name: nightly\nworkflows:\n  - {{workflow: {name}, input: {{who: A}}}}\n"
        answer = http.post("/api/v1/job-runs", content=job)
        assert answer.status_code == 201, answer.text
        job_run = answer.json()
        assert job_run["createdBy"] == "api-token:t-operator"
        deadline = time.monotonic() + 30
        got = job_run
        while got["status"] != "Completed" and time.monotonic() < deadline:
            time.sleep(0.1)
            got = http.get(f"/api/v1/job-runs/{job_run['id']}").json()
        assert got["status"] == "Completed", got
        assert got["runs"][0]["runtimeStatus"] == "Completed"
        listed = http.get("/api/v1/job-runs").json()["items"]
        assert job_run["id"] in [j["id"] for j in listed]
        by_job = http.get("/api/v1/executions", params={"jobRunId": job_run["id"]}).json()
        assert [d["id"] for d in by_job["items"]] == [got["runs"][0]["executionId"]]
        bad = "name: nightly\nworkflows:\n  - {workflow: ../etc/x.yaml}\n"
        assert (
            error(http.post("/api/v1/job-runs", content=bad), 422)["code"] == "invalid_definition"
        )
        error(http.post("/api/v1/job-runs", content="name: [unclosed"), 422)
        error(http.get("/api/v1/job-runs/no-such-job"), 404)


def test_entities(service: Service) -> None:
    kind = unique("Lead").replace("-", "")
    schema = {"type": "object", "properties": {"Status": {"type": "string"}}}
    with service.client("admin") as admin, service.client("operator") as http:
        created = admin.post("/api/v1/entity-types", json={"name": kind, "schema": schema})
        assert created.status_code == 201 and created.json()["created"] is True
        types = http.get("/api/v1/entity-types").json()["items"]
        assert kind in [t["name"] for t in types]
        entity = http.post(f"/api/v1/entities/{kind}", json={"Status": "New"})
        assert entity.status_code == 201, entity.text
        eid = entity.json()["id"]
        assert http.get(f"/api/v1/entities/{kind}/{eid}").json()["payload"] == {"Status": "New"}
        patched = http.patch(f"/api/v1/entities/{kind}/{eid}", json={"Status": "Won"})
        assert patched.json()["payload"] == {"Status": "Won"}
        found = http.get(f"/api/v1/entities/{kind}", params={"filter": '{"Status": "Won"}'})
        assert [e["id"] for e in found.json()["items"]] == [eid]
        error(http.get(f"/api/v1/entities/{kind}", params={"filter": "{nope"}), 422)
        bad = error(http.post(f"/api/v1/entities/{kind}", json={"Status": 3}), 422)
        assert [p["field"] for p in bad["details"]["problems"]] == ["payload.Status"]
        error(http.post(f"/api/v1/entities/{kind}", json=[1]), 422)
        error(http.get(f"/api/v1/entities/Other/{eid}"), 404)
        assert http.delete(f"/api/v1/entities/{kind}/{eid}").status_code == 200
        error(http.get(f"/api/v1/entities/{kind}/{eid}"), 404)


def test_concurrent_patches_of_one_entity_all_apply(service: Service) -> None:
    """20 threads, 40 PATCHes of one entity, each merging a field of its own: 6-8 were
    refused with 503 storage_unavailable ("kept changing … 20 tries") and not applied."""
    kind = unique("Race").replace("-", "")
    with service.client("admin") as admin:
        assert admin.post("/api/v1/entity-types", json={"name": kind}).status_code == 201
        eid = admin.post(f"/api/v1/entities/{kind}", json={}).json()["id"]
    url = f"/api/v1/entities/{kind}/{eid}"

    def patch(i: int) -> int:
        with service.client("operator") as http:
            answer = http.patch(url, json={f"f{i}": i})
            assert answer.status_code == 200, answer.text
            return answer.status_code

    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(patch, range(40))) == [200] * 40
    with service.client("viewer") as http:
        final = http.get(url).json()
    assert final["version"] == 41
    assert final["payload"] == {f"f{i}": i for i in range(40)}


def test_refusals_name_their_field_in_the_details(service: Service) -> None:
    """A lone surrogate in the input, a bad entity type name and bad entity filters were
    422s naming the field only in the message, ``details.field_path`` empty."""
    kind = unique("Named").replace("-", "")
    with service.client("admin") as http:
        name = push(http, HELLO)
        assert http.post("/api/v1/entity-types", json={"name": kind}).status_code == 201
        cases = [
            (
                http.post(f"/api/v1/workflows/{name}/executions", content=b'{"input": {"who": "\\ud800"}}', headers=JSON),
                ["input", "who"],
                "input.who: holds a lone surrogate (\\ud800); send valid Unicode",
            ),
            (
                http.post("/api/v1/entity-types", json={"name": "bad name!"}),
                ["name"],
                "name: entity type name 'bad name!' is not valid: use up to 128 letters",
            ),
            (
                http.get(f"/api/v1/entities/{kind}", params={"filter": '{"Score": {"regex": "x"}}'}),
                ["filter", "Score"],
                "filter.Score: unknown operator 'regex'; use one of eq, ne",
            ),
            (
                http.get(f"/api/v1/entities/{kind}", params={"filter": '{"Score": {"gt": true}}'}),
                ["filter", "Score", "gt"],
                "filter.Score.gt: 'gt' compares numbers or strings, not a bool",
            ),
            (
                http.get(f"/api/v1/entities/{kind}", params={"filter": "{nope"}),
                ["filter"],
                "filter: the text is not valid JSON (column 2): Expecting property name",
            ),
        ]  # fmt: skip
        for answer, path, message in cases:
            found = error(answer, 422)
            assert found["code"] == "invalid_input"
            assert found["message"].startswith(message), found
            assert found["details"]["field_path"] == path, found
            assert [p["field_path"] for p in found["details"]["problems"]] == [path]

"""Query parameters a route does not take, or takes once but got twice, are refused
(api.parameters): ``?stauts=Failed`` listed every execution. So is an Idempotency-Key sent
to a route that would ignore it."""

from __future__ import annotations

from tests.api.conftest import Service
from tests.api.helpers import HELLO, HOOK, error, push, start


def test_an_unknown_query_parameter_is_refused_by_name(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HELLO)
        start(http, name, {"who": "ada"})
        typo = error(http.get("/api/v1/executions", params={"stauts": "Failed"}), 422)
        assert typo["code"] == "invalid_input"
        assert typo["details"]["field_path"] == ["stauts"]
        assert typo["message"] == (
            "stauts: not a parameter of this route (its query parameters: correlationId, "
            "createdAfter, createdBefore, createdBy, cursor, includeTotal, input, jobRunId, "
            "limit, parentId, status, topLevel, workflow)"
        )
        # A route without query parameters says so; a start is refused before it starts.
        url = f"/api/v1/workflows/{name}/executions"
        none = error(http.post(f"{url}?dryRun=1", json={"input": {"who": "x"}}), 422)
        assert (
            none["message"] == "dryRun: not a parameter of this route (its query parameters: none)"
        )
        assert len(http.get("/api/v1/executions", params={"workflow": name}).json()["items"]) == 1
        # What the route takes still works, and so does a query that names nothing.
        assert http.get("/api/v1/executions", params={"status": "Failed"}).status_code == 200
        assert http.get("/api/v1/executions?&").status_code == 200


def test_a_parameter_sent_twice_is_refused_unless_it_is_a_list(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HELLO)
        made = start(http, name, {"who": "ada"})["id"]
        twice = error(http.get("/api/v1/executions?limit=5&limit=500"), 422)
        assert (twice["message"], twice["details"]["field_path"]) == (
            "limit: sent 2 times; send the parameter once",
            ["limit"],
        )
        logs = http.get(f"/api/v1/executions/{made}/logs?step=a&step=b")  # a list: repeats
        assert logs.status_code == 200, logs.text


def test_hooks_keep_any_query_as_trigger_data(service: Service) -> None:
    """``/hooks`` is not under /api/v1: its query is the trigger's data, whatever it is."""
    with service.client("admin") as http:
        name = push(http, HOOK)
        answer = http.post(f"/hooks/{name}/in?anything=1&anything=2", json={})
        assert answer.status_code in (200, 201, 202), answer.text


def test_an_idempotency_key_is_refused_where_it_would_be_ignored(service: Service) -> None:
    """POST /workflow-runs took an Idempotency-Key and ignored it: a client's retry
    started a second run. A route that changes something and takes no key says so."""
    with service.client("admin") as http:
        name = push(http, HELLO)
        made = start(http, name, {"who": "ada"})["id"]
        key = {"Idempotency-Key": "k-1"}
        for method, url, body in (
            ("POST", f"/api/v1/executions/{made}/cancel", {}),
            ("POST", "/api/v1/entity-types", {"name": "KeyedType"}),
            ("DELETE", f"/api/v1/workflows/{name}", None),
        ):
            found = error(http.request(method, url, json=body, headers=key), 422)
            assert found["details"]["field_path"] == ["Idempotency-Key"]
            assert found["message"] == (
                "Idempotency-Key: this route does not take it, and would do what it asks "
                "again on a retry; only a start, POST /workflow-runs and POST /job-runs do"
            )
        assert http.get(f"/api/v1/workflows/{name}").status_code == 200  # not deleted
        assert http.get(f"/api/v1/executions/{made}", headers=key).status_code == 200  # safe

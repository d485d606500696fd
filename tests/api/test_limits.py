"""Limits on what comes in: each refusal has its status and names its limit; nothing
refused is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.api.conftest import Service, fresh_database, launch
from tests.api.helpers import HELLO, error, push, settled, start, unique
from tests.api.test_metrics import timed
from tests.pg import BACKENDS

SMALL = {
    "FLOWLEDGER_MAX_BODY": "4KiB",
    "FLOWLEDGER_MAX_INPUT": "1KiB",
    "FLOWLEDGER_MAX_DEFINITION": "1KiB",
    "FLOWLEDGER_MAX_PAGE": "5",
    "FLOWLEDGER_MAX_JSON_DEPTH": "8",
    "FLOWLEDGER_HOOK_BODY_LIMIT": "16KiB",
}


@pytest.fixture(scope="module", params=BACKENDS)
def small(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """A server with small limits."""
    folder = tmp_path_factory.mktemp(f"limits-{request.param}")
    with (
        fresh_database(request, request.param, folder) as db_url,
        launch(db_url, folder, env=SMALL) as s,
    ):
        yield s


def test_a_body_over_the_limit_is_413_also_when_streamed(small: Service) -> None:
    with small.client("admin") as http:
        found = error(http.post("/api/v1/workflows", content="x" * 5000), 413)
        assert found["details"]["limit"] == 4096 and "FLOWLEDGER_MAX_BODY" in found["message"]
        chunks = iter([b"x" * 3000, b"y" * 3000])
        streamed = http.post("/api/v1/workflows", content=chunks)
        assert error(streamed, 413)["code"] == "payload_too_large"
        # Timed as refused before routing, not as a request no route matched.
        assert timed(http, "POST", "refused", "413") == 2
        assert timed(http, "POST", "unmatched", "413") == 0


def test_webhook_bodies_have_their_own_limit_above_the_api_s(small: Service) -> None:
    """FLOWLEDGER_HOOK_BODY_LIMIT alone bounds what a hook takes: a sender's 6 KiB
    payload passes a 16 KiB hook limit although API requests stop at 4 KiB."""
    hook = "name: {name}\ntriggers:\n  - {{type: webhook, path: {name}, auth: none}}\n" + (
        "steps:\n  - {{id: a, type: sys.transform, input: {{value: 1}}}}\n"
    )
    with small.client("admin") as http:
        name = push(http, hook, unique("big-hook"))
        body = json.dumps({"pad": "x" * 6000})
        taken = http.post(
            f"/hooks/{name}", content=body, headers={"Content-Type": "application/json"}
        )
        assert taken.status_code == 202, taken.text
        huge = json.dumps({"pad": "x" * 20000})
        found = error(http.post(f"/hooks/{name}", content=huge), 413)
        assert found["details"]["limit"] == 16384
        assert "FLOWLEDGER_HOOK_BODY_LIMIT" in found["message"]


def test_headers_over_64_kib_are_413_and_a_hook_stores_nothing(small: Service) -> None:
    """The server parsed headers without a bound, and an open hook stored them all:
    6 MB of headers passed with a 7-byte body."""
    hook = "name: {name}\ntriggers:\n  - {{type: webhook, path: {name}, auth: none}}\n" + (
        "steps:\n  - {{id: a, type: sys.transform, input: {{value: 1}}}}\n"
    )
    with small.client("admin") as http:
        name = push(http, hook, unique("header-hook"))
        padding = {f"x-pad-{i}": "p" * 4000 for i in range(20)}  # 80 KB
        found = error(http.post(f"/hooks/{name}", content=b"{}", headers=padding), 413)
        assert "request headers are larger than the limit of 64 KiB" in found["message"]
        assert error(http.get("/healthz", headers=padding), 413)["details"]["limit"] == 65536
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()
        assert listed["items"] == []
        fine = {f"x-pad-{i}": "p" * 4000 for i in range(10)}  # 40 KB: within
        assert http.post(f"/hooks/{name}", content=b"{}", headers=fine).status_code == 202


def test_json_nested_too_deep_is_422(small: Service) -> None:
    deep = "[" * 9 + "]" * 9
    with small.client("operator") as http:
        found = error(
            http.post(
                "/api/v1/entities/T", content=deep, headers={"Content-Type": "application/json"}
            ),
            422,
        )
        assert "FLOWLEDGER_MAX_JSON_DEPTH" in found["message"]
        # brackets inside strings do not count
        flat = json.dumps({"text": "[" * 50})
        answer = http.post(
            "/api/v1/entities/T", content=flat, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 404  # past the limit: no such entity type


def test_a_json_body_with_a_key_twice_is_400_and_starts_nothing(small: Service) -> None:
    json_type = {"Content-Type": "application/json"}
    twice = '{"input": {"who": "Ann"}, "input": {"who": "Bo"}}'
    with small.client("admin") as http:
        name = push(http, HELLO)
        found = error(
            http.post(f"/api/v1/workflows/{name}/executions", content=twice, headers=json_type),
            400,
        )
        assert found["code"] == "invalid_json"
        assert found["message"].endswith('the key "input" appears twice in one object')
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()
        assert listed["items"] == []
        # A definition is read by the definition loader, which says where.
        yaml = "{name: d, name: e, steps: []}"
        text = error(http.post("/api/v1/workflows", content=yaml), 422)
        assert text["code"] == "invalid_definition" and ":1:" in text["message"]
        # Not sent as JSON: said so, not in the validator's words.
        plain = http.post(
            f"/api/v1/workflows/{name}/executions",
            content='{"input": {"who": "Ann"}}',
            headers={"Content-Type": "text/plain"},
        )
        assert error(plain, 422)["message"] == (
            "the body must be a JSON object, sent with Content-Type: application/json"
        )
        # An entity's payload too, which said "must be a mapping, not b'{...}'".
        http.post("/api/v1/entity-types", json={"name": "Plain"}).raise_for_status()
        for content_type in ("text/plain", None):
            headers = {"Content-Type": content_type} if content_type else {}
            payload = http.post("/api/v1/entities/Plain", content='{"a": 1}', headers=headers)
            assert error(payload, 422)["message"] == (
                "the body must be a JSON object, sent with Content-Type: application/json"
            )


def test_input_over_the_limit_is_413_and_starts_nothing(small: Service) -> None:
    with small.client("admin") as http:
        name = push(http, HELLO)
        found = error(
            http.post(f"/api/v1/workflows/{name}/executions", json={"input": {"who": "x" * 2000}}),
            413,
        )
        assert found["details"]["field_path"] == ["input"]
        assert "FLOWLEDGER_MAX_INPUT" in found["message"]
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()
        assert listed["items"] == []


def test_definition_over_the_limit_is_413_and_stores_nothing(small: Service) -> None:
    name = unique("big")
    text = HELLO.format(name=name) + "\n# " + "x" * 1200 + "\n"
    with small.client("admin") as http:
        found = error(http.post("/api/v1/workflows", content=text), 413)
        assert "FLOWLEDGER_MAX_DEFINITION" in found["message"]
        error(http.get(f"/api/v1/workflows/{name}"), 404)


def test_page_size_over_the_configured_limit_is_422(small: Service) -> None:
    with small.client("viewer") as http:
        found = error(http.get("/api/v1/executions", params={"limit": 6}), 422)
        assert "FLOWLEDGER_MAX_PAGE" in found["message"]
        assert http.get("/api/v1/executions", params={"limit": 5}).status_code == 200
        # Every list: subscriptions and step logs too (they allowed up to 1000).
        for path in ("/api/v1/subscriptions", "/api/v1/executions/any/logs"):
            found = error(http.get(path, params={"limit": 6}), 422)
            assert "FLOWLEDGER_MAX_PAGE" in found["message"]


LOOP = """
name: {name}
steps:
  - id: each
    type: sys.loop
    input: {{items: [1, 2, 3]}}
    steps:
      - id: double
        type: sys.transform
        input: {{value: "{{{{ loop.each.item * 2 }}}}"}}
"""


def test_an_event_history_comes_a_page_at_a_time_and_the_cli_reads_every_page(
    small: Service,
) -> None:
    """No default page once let a loop of 10,000 iterations answer its 40,005 events in
    one 7.7 MB list: a default page (the configured maximum here, 5) with a Link to the
    next one, and the readers of a whole history walk through every page."""
    with small.client("admin") as http:
        name = push(http, LOOP)
        execution_id = str(start(http, name)["id"])
        assert settled(http, execution_id)["runtimeStatus"] == "Completed"
        url: str | None = f"/api/v1/executions/{execution_id}/events"
        pages: list[list[dict[str, object]]] = []
        while url is not None:
            answer = http.get(url)
            assert answer.status_code == 200, answer.text
            pages.append(answer.json())
            url = answer.links.get("next", {}).get("url")
        seqs = [event["seq"] for page in pages for event in page]
        assert len(seqs) > 10 and seqs == list(range(1, len(seqs) + 1))
        assert all(len(page) == 5 for page in pages[:-1]) and 0 < len(pages[-1]) <= 5
        found = error(http.get(f"/api/v1/executions/{execution_id}/events?limit=6"), 422)
        assert "FLOWLEDGER_MAX_PAGE" in found["message"]
        # In the house's words, as every other refusal: not pydantic's, nor SQLite's 500.
        for query, said in (
            ("limit=abc", 'limit: must be a whole number, not "abc"'),
            ("after=-5", 'after: must be at least 0, not "-5"'),
            ("after=9223372036854775808", "after: must be at most 9223372036854775807"),
        ):
            found = error(http.get(f"/api/v1/executions/{execution_id}/events?{query}"), 422)
            assert found["message"].startswith(said), found["message"]
        # The command line and the seed's states read the whole history, page by page.
        lines = small.cli("executions", "events", execution_id, "--json").stdout.splitlines()
        assert [json.loads(line)["seq"] for line in lines] == seqs
        states = http.get(f"/api/v1/executions/{execution_id}/states").json()
        assert [len(s["stage"]["tasks"]) for s in states] == [1, 3]


def test_entity_payload_over_the_limit_is_413(small: Service) -> None:
    kind = unique("Big").replace("-", "")
    with small.client("admin") as http:
        assert http.post("/api/v1/entity-types", json={"name": kind}).status_code == 201
        found = error(http.post(f"/api/v1/entities/{kind}", json={"a": "x" * 2000}), 413)
        assert found["details"]["field_path"] == ["payload"]
        assert http.get(f"/api/v1/entities/{kind}").json()["items"] == []


def test_default_limits(service: Service) -> None:
    with service.client("admin") as http:
        found = error(http.post("/api/v1/workflows", content=b"x" * (1024 * 1024 + 1)), 413)
        assert found["details"]["limit"] == 1024 * 1024
        for limit in (0, 1001, -1):
            error(http.get("/api/v1/executions", params={"limit": limit}), 422)
        error(http.get("/api/v1/executions", params={"limit": "many"}), 422)

"""Entities over HTTP, beside the CLI on the server's database: one order for both
faces, and filters as large as documented."""

from __future__ import annotations

import json

import httpx

from tests.api.conftest import Service
from tests.api.helpers import error, unique


def _entity_type(service: Service) -> str:
    kind = unique("Order").replace("-", "")
    with service.client("admin") as admin:
        assert admin.post("/api/v1/entity-types", json={"name": kind}).status_code == 201
    return kind


def test_the_cli_lists_entities_newest_first_as_the_api_does(service: Service) -> None:
    """``flowledger entities list`` printed the oldest first, the API the newest. The CLI
    runs in this process (tests/inprocess.py) on the server's database: its order is the
    subject, not its process (a process each cost seconds)."""
    with service.client("operator") as http:
        kind = _entity_type(service)
        made = [http.post(f"/api/v1/entities/{kind}", json={"n": i}) for i in range(3)]
        newest = [answer.json()["id"] for answer in reversed(made)]
        api = http.get(f"/api/v1/entities/{kind}").json()["items"]
        page = http.get(f"/api/v1/entities/{kind}", params={"limit": 2}).json()["items"]
    assert [doc["id"] for doc in api] == newest

    def cli(*args: str) -> str:
        done = service.cli_in_process("entities", "list", kind, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert json.loads(cli("--json")) == api
    assert json.loads(cli("--limit", "2", "--json")) == page
    table = cli()
    assert sorted(newest, key=table.index) == newest


def test_an_in_filter_takes_the_documented_thousand_values(service: Service) -> None:
    """A thousand values answered 500 (SQLite: "Expression tree is too large"), 900 took
    4.4 s on four entities."""
    with service.client("viewer") as viewer, service.client("operator") as http:
        kind = _entity_type(service)
        for score in (3, 998, 1500):
            assert http.post(f"/api/v1/entities/{kind}", json={"Score": score}).status_code == 201
        path = f"/api/v1/entities/{kind}"

        def found(filter: object) -> httpx.Response:
            return viewer.get(path, params={"filter": json.dumps(filter)})

        answer = found({"Score": {"in": list(range(1000))}})
        assert answer.status_code == 200, answer.text
        assert [doc["payload"]["Score"] for doc in answer.json()["items"]] == [998, 3]
        over = error(found({"Score": {"in": list(range(1001))}}), 422)
        assert "'in' needs a list of up to 1000 values" in over["message"]
        many = error(found({f"F{i}": i for i in range(101)}), 422)
        assert "a filter holds up to 100 conditions" in many["message"]
        order = error(viewer.get(path, params={"orderBy": ",".join(["Score"] * 33)}), 422)
        assert order["details"]["field_path"] == ["orderBy"]

"""``GET /api/v1/executions?input=PATH=VALUE``: executions found by what they were
started with (a start's input, a webhook's body), paged, with the other filters; a bad
filter is a 422 naming it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import Service
from tests.api.helpers import HOOK, error, push, start


def _listed(http: httpx.Client, params: list[tuple[str, Any]]) -> dict[str, Any]:
    answer = http.get("/api/v1/executions", params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_executions_are_found_by_their_input(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HOOK)
        made = [
            start(http, name, {"orderId": i, "customer": {"id": i % 2}})["id"] for i in range(6)
        ]
        hooked = http.post(f"/hooks/{name}/in", json={"orderId": 42, "customer": {"id": "7"}})
        assert hooked.status_code in (200, 202), hooked.text
        ours = [("workflow", name)]

        def ids(*params: tuple[str, Any]) -> list[str]:
            return [item["id"] for item in _listed(http, [*ours, *params])["items"]]

        assert ids(("input", "orderId=3")) == [made[3]]
        assert ids(("input", 'orderId="3"')) == []  # the string is not the number
        assert ids(("input", "orderId=42")) == [_listed(http, ours)["items"][0]["id"]]  # the body
        assert ids(("input", 'customer.id="7"')) == ids(("input", "orderId=42"))
        assert ids(("input", "customer.id=1"), ("input", "orderId=3")) == [made[3]]  # all of them
        assert ids(("input", "customer.id=1"), ("input", "orderId=2")) == []
        total = _listed(http, [*ours, ("input", "customer.id=0"), ("includeTotal", "true")])
        assert total["total"] == 3

        # Paged one at a time, newest first, each once.
        seen: list[str] = []
        cursor = None
        while True:
            params = [*ours, ("input", "customer.id=1"), ("limit", 1)]
            page = _listed(http, params + ([("cursor", cursor)] if cursor else []))
            seen += [item["id"] for item in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == [made[5], made[3], made[1]]
        # A cursor belongs to its filters.
        first = _listed(http, [*ours, ("input", "customer.id=1"), ("limit", 1)])["nextCursor"]
        other = http.get(
            "/api/v1/executions",
            params=[*ours, ("input", "customer.id=0"), ("cursor", first)],
        )
        assert error(other, 400)["code"] == "invalid_cursor"


def test_a_bad_input_filter_is_a_422_naming_it(service: Service) -> None:
    with service.client("viewer") as http:
        cases: list[tuple[list[tuple[str, str]], list[Any], str]] = [
            ([("input", "orderId")], ["input", 0], "\"orderId\" has no '='; give PATH=VALUE"),
            ([("input", "=7")], ["input", 0], "the path before '=' is empty"),
            ([("input", "a=1"), ("input", "a..b=1")], ["input", 1], "has an empty key"),
            ([("input", "a b=1")], ["input", 0], '"a b", which is not a key name'),
            ([("input", "tags=[1]")], ["input", 0], "is an object or an array"),
            ([("input", f"k{i}=1") for i in range(11)], ["input"], "11 input filters given"),
        ]
        for params, path, words in cases:
            found = error(http.get("/api/v1/executions", params=params), 422)
            assert found["code"] == "invalid_input"
            assert found["details"]["field_path"] == path, found
            assert words in found["message"], found

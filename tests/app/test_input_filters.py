"""Executions found by what they were started with (``ListExecutions.input``), on SQLite
and PostgreSQL alike: values compared as JSON, nested paths, the webhook body, combined
with the other filters, the counts and the cursor paging; bad filters refused."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.app import (
    App,
    InvalidInputError,
    ListExecutions,
    PushWorkflows,
    StartExecution,
    WorkflowText,
)
from flowledger.app.hooks import ReceiveHook
from flowledger.app.input_filters import MAX_INPUT_FILTERS

ORDER = """\
name: order
triggers:
  - {type: webhook, path: orders, auth: none}
steps:
  - {id: done, type: sys.no_action}
"""
OTHER = ORDER.replace("name: order", "name: other").replace("path: orders", "path: others")

#: Each execution's input, by a name the assertions use.
INPUTS: dict[str, Any] = {
    "number": {"orderId": 1234},
    "string": {"orderId": "1234"},
    "float": {"orderId": 1234.0, "customer": {"id": 7, "name": "Ada"}},
    "true": {"flag": True},
    "one": {"flag": 1},
    "null": {"note": None},
    "array": {"orderId": [1234], "customer": {"id": "7"}},
    "hyphen": {"order-id": "x", "ünits": 3},
    "like": {"code": "50%_off", "delta": -5},
}


async def _started(app: App) -> dict[str, str]:
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=t) for t in (ORDER, OTHER)]))
    ids = {}
    for name, given in INPUTS.items():
        doc = await app.executions.start(StartExecution(workflow="order", input=given))
        ids[name] = doc["id"]
    return ids


async def _found(app: App, ids: dict[str, str], **query: Any) -> set[str]:
    page = await app.executions.list(ListExecutions(limit=100, **query))
    names = {execution_id: name for name, execution_id in ids.items()}
    return {names.get(doc["id"], doc["id"]) for doc in page.items}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["orderId=1234"], {"number", "float"}),  # numbers by value; never the string
        (['orderId="1234"'], {"string"}),
        (["customer.id=7"], {"float"}),
        (['customer.id="7"'], {"array"}),
        (["customer.name=Ada"], {"float"}),  # not JSON: the text
        (["customer.name=ada"], set()),  # exactly (SQLite's LIKE, which sees case alike, too)
        (["orderId=1234.0"], {"number", "float"}),
        (["code=50%_off"], {"like"}),  # LIKE's wildcards are only text
        (["code=50%"], set()),
        (["delta=-5"], {"like"}),
        (["delta=5"], set()),
        (["flag=true"], {"true"}),  # true is not 1
        (["flag=1"], {"one"}),
        (["note=null"], {"null"}),  # a JSON null; a missing key is not null
        (["order-id=x", "ünits=3"], {"hyphen"}),
        (["orderId=1234", "customer.id=7"], {"float"}),  # all must match
        (["orderId=1234", "customer.id=8"], set()),
        (["customer=7"], set()),  # an object is not 7
        (["missing.deeper=1"], set()),
        ({"orderId": "1234"}, {"string"}),  # Python: path → value, as typed
    ],
)
async def test_the_input_is_compared_as_json(app: App, given: Any, expected: set[str]) -> None:
    ids = await _started(app)
    assert await _found(app, ids, input=given) == expected


async def test_a_webhook_s_body_is_its_input(app: App) -> None:
    ids = await _started(app)
    receipt = await app.hooks.receive(
        ReceiveHook(
            path="orders",
            headers={"content-type": "application/json"},
            body=b'{"orderId": 1234, "arguments": {"orderId": 5}}',
        )
    )
    ids["hook"] = receipt["executionId"]
    assert await _found(app, ids, input=["orderId=1234"]) == {"number", "float", "hook"}
    # The body's own "arguments" key is the input's, not the trigger's.
    assert await _found(app, ids, input=["arguments.orderId=5"]) == {"hook"}


async def test_combined_with_the_other_filters_and_counted(app: App) -> None:
    ids = await _started(app)
    other = await app.executions.start(StartExecution(workflow="other", input={"orderId": 1234}))
    ids["other"] = other["id"]
    assert await _found(app, ids, input=["orderId=1234"]) == {"number", "float", "other"}
    assert await _found(app, ids, input=["orderId=1234"], workflow="other") == {"other"}
    assert await _found(app, ids, input=["orderId=1234"], status="Completed") == set()
    both = ListExecutions(input=["orderId=1234"], status="NotStarted", include_total=True)
    assert (await app.executions.list(both)).total == 3
    assert await app.executions.count(both) == 3
    counts = await app.executions.count_by_status(both)
    assert counts["NotStarted"] == 3 and sum(counts.values()) == 3


async def test_paging_through_a_filtered_listing(app: App) -> None:
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ORDER)]))
    wanted = []
    for i in range(12):
        customer = {"id": 7 if i % 2 else 8}
        doc = await app.executions.start(
            StartExecution(workflow="order", input={"customer": customer, "n": i})
        )
        if i % 2:
            wanted.append(doc["id"])
    seen: list[str] = []
    cursor = None
    while True:
        page = await app.executions.list(
            ListExecutions(input=["customer.id=7"], limit=2, cursor=cursor)
        )
        seen += [doc["id"] for doc in page.items]
        assert all(doc["input"]["customer"]["id"] == 7 for doc in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == wanted[::-1]  # newest first, each once
    # A cursor belongs to its filters: another value, or none, refuses it.
    first = await app.executions.list(ListExecutions(input=["customer.id=7"], limit=2))
    for query in ({"input": ["customer.id=8"]}, {}):
        with pytest.raises(InvalidInputError, match="other filters"):
            await app.executions.list(ListExecutions(cursor=first.next_cursor, **query))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["=1234"], "input\\[0\\]: the path before '=' is empty"),
        (["orderId"], "input\\[0\\]: \"orderId\" has no '='; give PATH=VALUE"),
        (["customer..id=7"], 'input\\[0\\]: the path "customer..id" has an empty key'),
        (["customer.=7"], 'input\\[0\\]: the path "customer." has an empty key'),
        (["order id=1"], 'input\\[0\\]: the path "order id" has "order id", which is not a key'),
        (["items.0.sku=1"], 'input\\[0\\]: the path "items.0.sku" has "0", which is not a key'),
        (["a=1", "b[0]=1"], 'input\\[1\\]: the path "b\\[0\\]" has "b\\[0\\]", which is not a key'),
        (["tags=[1]"], 'input\\[0\\]: the value "\\[1\\]" is an object or an array'),
        (['c={"id": 7}'], "input\\[0\\]: the value .* is an object or an array"),
        (["n=1e999"], 'input\\[0\\]: the number "1e999" is too large'),
        (["n=9223372036854775808"], "input\\[0\\]: the integer .* is past 64 bits"),
        (['s="\\ud800"'], "input\\[0\\]: the value .* holds a lone surrogate"),
        (["s=\x00"], "input\\[0\\]: must not contain NUL"),
        ([f"k{i}=1" for i in range(MAX_INPUT_FILTERS + 1)], "input: 11 input filters given"),
        (["k=" + "x" * 1000], "input\\[0\\]: is 1,002 characters long; at most 1,000"),
        ({"orderId": object()}, "input: .* is not a JSON value"),
    ],
)
def test_bad_filters_are_refused_saying_what_is_wrong(given: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ListExecutions(input=given)


def test_the_largest_filters_still_read() -> None:
    request = ListExecutions(input=[f"k{i}=-9223372036854775808" for i in range(10)])
    assert len(request.input_matches()) == MAX_INPUT_FILTERS
    assert request.input_matches()[0].value == -(2**63)
    empty = ListExecutions(input=["note=", "a.b-c._d=Ada Lovelace"]).input_matches()
    assert [(m.path, m.value) for m in empty] == [
        (("note",), ""),
        (("a", "b-c", "_d"), "Ada Lovelace"),
    ]

"""The step-type catalogue (app.step_types): what every registered type takes and gives,
read from its models, for built-ins and plugins alike, with no database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, Field, RootModel

from flowledger import StepContext, StepRegistry, step_type
from flowledger.app import App, GetStepType, ListStepTypes, NotFoundError, StepTypes


class Account(BaseModel):
    iban: str = Field(description="Where the money goes.")
    holder: str | None = None


class PayInput(BaseModel):
    amount: Decimal = Field(gt=0, description="How much to pay.")
    to: Account
    tags: list[str] = Field(default_factory=list, max_length=5)


class PayOutput(BaseModel):
    paymentId: str = Field(description="The bank's id of the payment.")
    fees: list[Account]


@step_type("acme.pay")
async def pay(data: PayInput, ctx: StepContext) -> PayOutput:
    """Pay an account. It takes a day."""
    return PayOutput(paymentId="p-1", fees=[])


class Counted(RootModel[list[int]]):
    pass


@step_type("acme.count")
async def count(data: PayInput, ctx: StepContext) -> Counted:
    return Counted([1])


@step_type("acme.free")
async def free(data: PayInput, ctx: StepContext) -> dict[str, Any]:
    return {}


def _catalogue() -> StepTypes:
    registry = StepRegistry.with_builtins()
    registry.register(pay)
    return StepTypes(registry)


def _field(fields: list[Any], name: str) -> Any:
    return next(f for f in fields if f["name"] == name)


async def test_every_built_in_is_listed_with_its_fields_from_its_models() -> None:
    docs = await _catalogue().list(ListStepTypes(builtin=True))
    names = [d["name"] for d in docs]
    assert names == sorted(StepRegistry.with_builtins().names())
    http = next(d for d in docs if d["name"] == "sys.http_request")
    assert http["kind"] == "task" and http["builtin"] is True
    assert _field(http["input"], "url") == {
        "name": "url",
        "type": "string",
        "required": True,
        "default": None,
        "description": "An http:// or https:// URL; its own query string is kept.",
        "secrets": True,
    }
    method = _field(http["input"], "method")
    assert method["default"] == "GET" and method["required"] is False
    assert method["type"].startswith('"GET" | "POST"')
    assert _field(http["input"], "json")["secrets"] is True  # by its alias, not json_
    assert _field(http["input"], "headers")["default"] == {}  # a default_factory's value
    assert _field(http["input"], "timeout")["type"] == "number (more than 0)"
    assert [f["name"] for f in http["output"]] == ["statusCode", "headers", "body", "bodyEncoding"]
    assert _field(http["output"], "bodyEncoding")["type"] == '"base64" | null'
    # Every field of a built-in says what it is for.
    for doc in docs:
        for field in [*doc["input"], *(doc["output"] or [])]:
            assert field["description"], (doc["name"], field["name"])


async def test_an_output_without_fields_says_what_it_is() -> None:
    docs = {d["name"]: d for d in await _catalogue().list(ListStepTypes())}
    assert docs["sys.transform"]["output"] is None
    assert docs["sys.transform"]["outputIs"] == "the rendered `value`, whatever it holds"
    assert "JSON Schema in `schema`" in docs["sys.wait_for_input"]["outputIs"]
    assert docs["sys.fail"]["output"] is None
    assert docs["sys.fail"]["outputIs"] == "nothing: the step always fails"
    assert docs["sys.delay"]["outputIs"] is None
    until = _field(docs["sys.delay"]["input"], "until")
    assert until["type"] == "time" and "with its zone" in until["description"]
    wait = docs["sys.wait_for_input"]["input"]
    assert _field(wait, "on_timeout.default")["description"] == (
        "The step's output when nobody answered in time."
    )
    children = docs["sys.sub_workflow"]["output"]
    assert _field(children, "executions[].runtimeStatus")["type"] == "string"


async def test_a_plugin_type_is_listed_from_its_own_models() -> None:
    catalogue = _catalogue()
    (doc,) = await catalogue.list(ListStepTypes(builtin=False))
    assert doc["name"] == "acme.pay" and doc["builtin"] is False
    assert doc["module"] == __name__
    assert doc["description"] == "Pay an account. It takes a day."
    assert [f["name"] for f in doc["input"]] == ["amount", "to", "to.iban", "to.holder", "tags"]
    amount = _field(doc["input"], "amount")
    assert amount["required"] is True and amount["description"] == "How much to pay."
    assert amount["type"] == "number (more than 0) | string"  # a Decimal: a number or text
    assert _field(doc["input"], "to.iban")["required"] is True
    assert _field(doc["input"], "to.holder") | {"type": "?"} == {
        "name": "to.holder",
        "type": "?",
        "required": False,
        "default": None,
        "description": "",
        "secrets": False,
    }
    assert _field(doc["input"], "tags")["type"] == "list of string (at most 5 items)"
    assert [f["name"] for f in doc["output"]] == [
        "paymentId",
        "fees",
        "fees[].iban",
        "fees[].holder",
    ]
    assert _field(doc["output"], "fees[].holder")["type"] == "string | null"
    assert await catalogue.get(GetStepType(name="acme.pay")) == doc


async def test_an_output_of_one_value_or_of_any_json_says_so() -> None:
    registry = StepRegistry()
    registry.register(count)
    registry.register(free)
    docs = {d["name"]: d for d in await StepTypes(registry).list(ListStepTypes())}
    assert docs["acme.count"]["output"] is None
    assert docs["acme.count"]["outputIs"] == "a value of type list of integer"
    assert docs["acme.free"]["output"] is None
    assert docs["acme.free"]["outputIs"] == "any JSON: the step type declares no output model"


async def test_an_unknown_type_is_not_found_with_a_did_you_mean() -> None:
    with pytest.raises(NotFoundError) as raised:
        await _catalogue().get(GetStepType(name="sys.htp_request"))
    assert "no step type 'sys.htp_request'; did you mean 'sys.http_request'?" in str(raised.value)


async def test_the_application_lists_its_engines_types_without_opening_a_database(
    tmp_path: Any,
) -> None:
    db = tmp_path / "never.db"
    application = App(f"sqlite:///{db}", create=False)
    doc = await application.step_types.get(GetStepType(name="sys.loop"))
    assert doc["kind"] == "loop" and doc["module"] is None  # the scheduler runs it
    assert not db.exists()

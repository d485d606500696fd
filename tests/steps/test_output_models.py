"""A custom step's output model: what the reference checker reads is what is stored.

Outputs are stored by alias (``model_dump(mode="json", by_alias=True)``) and references
are checked against the serialization-mode schema, so a name the checker accepts is
the name the data has when the step runs.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel

from flowledger import DefinitionError, Engine, StepContext, StepRegistry, Suspend, step_type
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.strictness import stored_definitions
from flowledger.steps.base import stored_loc
from flowledger.templates import TemplateEngine
from flowledger.timeutil import utcnow


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Address(Camel):
    zip_code: str


class Customer(BaseModel):
    customer_id: str = Field(alias="customerId")
    address: Address
    billing: Address | None = None
    previous: list[Address] = []
    by_kind: dict[str, Address] = {}


class Line(BaseModel):
    sku: str
    price: Decimal
    discount: Decimal | None = None


class Card(BaseModel):
    last4: str


class Bank(BaseModel):
    iban: str


class LookupOutput(BaseModel):
    customer: Customer
    lines: list[Line]
    pay: Card | Bank
    note: str | None = None

    @computed_field(alias="lineCount")  # type: ignore[prop-decorator]
    @property
    def line_count(self) -> int:
        return len(self.lines)


class LookupInput(BaseModel):
    mode: str = "ok"


def _customer() -> Customer:
    home = Address(zip_code="N1")
    return Customer(
        customerId="c-9", address=home, billing=home, previous=[home], by_kind={"home": home}
    )


class Other(BaseModel):
    something: str


class Extended(LookupOutput):
    internal: str = "not for the outside"


@step_type("test.lookup")
async def lookup(data: LookupInput, ctx: StepContext) -> LookupOutput:
    lines = [Line(sku="A", price=Decimal("9.99"))]
    if data.mode == "construct_missing":
        return LookupOutput.model_construct(customer=_customer(), pay=Card(last4="4242"))
    if data.mode == "construct_wrong":
        return LookupOutput.model_construct(customer=_customer(), lines=lines, pay=7)
    if data.mode == "construct_by_name":  # nested data under the Python names
        customer = {
            "customer_id": 5,
            "address": {"zip_code": 1},
            "previous": [{}],
            "by_kind": {"home": {"zip_code": None}},
        }
        return LookupOutput.model_construct(customer=customer, lines=lines, pay=Card(last4="1"))
    if data.mode == "construct_nested":  # nested instances that skipped validation
        customer = Customer.model_construct(
            customer_id=5, address=Address.model_construct(zip_code=1)
        )
        bad = [Line.model_construct(sku="B", price="not a number")]
        return LookupOutput(customer=_customer(), lines=lines, pay=Card(last4="1")).model_copy(
            update={"customer": customer, "lines": bad}
        )
    if data.mode == "other_class":
        return Other(something="x")  # type: ignore[return-value]
    if data.mode == "changed":
        out = LookupOutput(customer=_customer(), lines=lines, pay=Card(last4="4242"))
        out.lines = "none"  # type: ignore[assignment]
        return out
    if data.mode == "subclass":
        return Extended(customer=_customer(), lines=lines, pay=Card(last4="4242"))
    return LookupOutput(customer=_customer(), lines=lines, pay=Card(last4="4242"))


@step_type("test.free_model")
async def free_model(data: LookupInput, ctx: StepContext) -> dict[str, Any]:
    return _customer()  # type: ignore[return-value]


def _registry() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    registry.register(lookup)
    registry.register(free_model)
    return registry


def _workflow(value: str, mode: str = "ok") -> str:
    return textwrap.dedent(
        f"""
        name: out
        steps:
          - {{id: lookup, type: test.lookup, input: {{mode: {mode}}}}}
          - {{id: use, type: sys.transform, input: {{value: {value}}}}}
        """
    )


def _problems(value: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_workflow_text(_workflow(value), _registry(), TemplateEngine(), "wf.yaml")
    return [p.format() for p in info.value.problems]


def _compiles(value: str) -> None:
    load_workflow_text(_workflow(value), _registry(), TemplateEngine(), "wf.yaml")


async def _run(text: str) -> dict[str, Any]:
    async with Engine("sqlite://", registry=_registry()) as engine:
        doc = await engine.run(engine.load_text(text))
    return {"doc": doc, **{s["stepId"]: s for s in doc["steps"].values()}}


# -- #1: aliases ------------------------------------------------------------------------


ALIASED_READS = {
    "id": "{{ steps.lookup.output.customer.customerId }}",
    "zip": "{{ steps.lookup.output.customer.address.zipCode }}",
    "billing": "{{ steps.lookup.output.customer.billing.zipCode }}",
    "previous": "{{ steps.lookup.output.customer.previous[0].zipCode }}",
    "kind": "{{ steps.lookup.output.customer.by_kind.home.zipCode }}",
    "card": "{{ steps.lookup.output.pay.last4 }}",
}


async def test_the_name_the_checker_accepts_is_the_name_the_stored_output_has() -> None:
    """The checker read alias names (validation-mode schema) while the output was stored
    by field name: every accepted reference to an aliased field failed at run time."""
    value = "{" + ", ".join(f'{k}: "{v}"' for k, v in ALIASED_READS.items()) + "}"
    ran = await _run(_workflow(value))
    assert ran["doc"]["runtimeStatus"] == "Completed", ran["doc"]["error"]
    assert ran["use"]["outputData"] == dict.fromkeys(ALIASED_READS, "c-9") | {
        "zip": "N1",
        "billing": "N1",
        "previous": "N1",
        "kind": "N1",
        "card": "4242",
    }
    customer = ran["lookup"]["outputData"]["customer"]
    assert customer["customerId"] == "c-9" and "customer_id" not in customer
    assert customer["billing"] == {"zipCode": "N1"}
    assert customer["by_kind"] == {"home": {"zipCode": "N1"}}


def test_a_field_name_under_an_alias_is_refused_with_the_alias_suggested() -> None:
    for read in (
        "customer.customer_id",
        "customer.address.zip_code",
        "customer.billing.zip_code",
        "customer.previous[0].zip_code",
        "customer.by_kind.home.zip_code",
    ):
        (problem,) = _problems(f'"{{{{ steps.lookup.output.{read} }}}}"')
        field = read.rsplit(".", 1)[1]
        assert f"has no field '{field}' (its fields: " in problem, problem
        assert "did you mean 'customerId'?" in problem or "did you mean 'zipCode'?" in problem


async def test_a_free_form_step_returning_a_model_stores_it_by_alias_too() -> None:
    text = textwrap.dedent(
        """
        name: free
        steps:
          - {id: lookup, type: test.free_model}
          - {id: use, type: sys.transform, input: {value: "{{ steps.lookup.output.customerId }}"}}
        """
    )
    ran = await _run(text)
    assert ran["use"]["outputData"] == "c-9"


async def test_a_computed_field_is_stored_and_may_be_referenced_and_narrowed() -> None:
    """model_dump includes computed fields, but the validation-mode schema lacks them:
    the checker refused a reference to what the stored output has."""
    text = textwrap.dedent(
        """
        name: computed
        steps:
          - id: lookup
            type: test.lookup
            output_schema: {type: object, properties: {lineCount: {type: integer}}}
          - {id: use, type: sys.transform, input: {value: "{{ steps.lookup.output.lineCount }}"}}
        """
    )
    ran = await _run(text)
    assert ran["doc"]["runtimeStatus"] == "Completed", ran["doc"]["error"]
    assert ran["use"]["outputData"] == 1


# -- #7: Decimal ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "steps.lookup.output.lines[0].price * 2",
        "steps.lookup.output.lines[0].price + steps.lookup.output.lines[0].price",
        "-steps.lookup.output.lines[0].discount",
        "steps.lookup.output.lines[0].price > 5",
        "1 < steps.lookup.output.lines[0].discount",
    ],
)
def test_arithmetic_on_a_decimal_stored_as_text_is_refused(expression: str) -> None:
    """'9.99' * 2 passed validation and gave '9.999.99' when the step ran."""
    (problem,) = _problems(f'"{{{{ {expression} }}}}"')
    assert "is a Decimal, which is stored as text to keep its digits" in problem
    assert "convert it first, as (steps.lookup.output.lines[0]." in problem
    assert "| float)" in problem
    with stored_definitions():  # a stored version that passed before still compiles
        _compiles(f'"{{{{ {expression} }}}}"')


async def test_a_decimal_is_stored_as_text_and_read_as_a_number_after_float() -> None:
    value = '{doubled: "{{ (steps.lookup.output.lines[0].price | float) * 2 }}", text: "{{ steps.lookup.output.lines[0].price }}"}'
    ran = await _run(_workflow(value))
    assert ran["doc"]["runtimeStatus"] == "Completed", ran["doc"]["error"]
    assert ran["lookup"]["outputData"]["lines"][0]["price"] == "9.99"
    assert ran["use"]["outputData"] == {"doubled": 19.98, "text": "9.99"}
    (problem,) = _problems('"{{ steps.lookup.output.lines[0].price.digits }}"')
    assert "lines[0].price is a string, so it has no field 'digits'" in problem


# -- #12: what a handler returns is validated, whatever it is ------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("construct_missing", "lines: is required"),
        ("construct_wrong", "pay"),
        ("other_class", "customer: is required; lines: is required; pay: is required"),
        ("changed", "lines:"),
        (
            "construct_nested",
            "customer.customerId: must be text, not 5; customer.address.zipCode: must be "
            "text, not 1; lines[0].price:",
        ),
    ],
)
async def test_an_instance_that_skipped_validation_fails_its_step(mode: str, expected: str) -> None:
    """Instances were dumped as they were: the step completed without the declared
    fields, and the failure surfaced in a later step that read them."""
    ran = await _run(_workflow('"{{ steps.lookup.output.lines }}"', mode))
    assert ran["doc"]["runtimeStatus"] == "Failed"
    message = ran["lookup"]["error"]["message"]
    assert message.startswith("output does not match the step's output model: "), message
    assert expected in message
    assert "use" not in ran


async def test_a_mismatch_names_each_field_as_the_stored_output_does() -> None:
    """The error named the Python fields (customer.customer_id), which neither the stored
    output, nor a reference, nor validate's hints ('did you mean customerId') use."""
    ran = await _run(_workflow('"{{ steps.lookup.output.lines }}"', "construct_by_name"))
    message = ran["lookup"]["error"]["message"]
    assert message == (
        "output does not match the step's output model: "
        "customer.customerId: must be text, not 5; customer.address.zipCode: must be text, "
        "not 1; customer.previous[0].zipCode: is required; "
        "customer.by_kind.home.zipCode: must be text, not null"
    )


class Tagged(BaseModel):
    kind: Literal["t"] = "t"
    zip_code: str = Field(alias="zipCode")


class Marked(BaseModel):
    kind: Literal["m"] = "m"
    zip_code: str


class Spelled(BaseModel):
    written: int = Field(0, serialization_alias="writtenAs")
    read: int = Field(0, validation_alias="readAs")
    pair: tuple[int, Address] = (0, Address(zip_code="x"))
    either: Tagged | Card | None = None
    one_of: Annotated[Tagged | Marked, Field(discriminator="kind")] | None = None


@pytest.mark.parametrize(
    ("loc", "stored"),
    [
        (("written",), ("writtenAs",)),
        (("readAs",), ("read",)),  # stored under its Python name: no serialization alias
        (("pair", 1, "zip_code"), ("pair", 1, "zipCode")),
        (("either", "Tagged", "zip_code"), ("either", "Tagged", "zipCode")),
        (("one_of", "t", "zip_code"), ("one_of", "t", "zipCode")),
        (("one_of", "m", "zip_code"), ("one_of", "m", "zip_code")),
        (("pair", 1, "unknown", 3), ("pair", 1, "unknown", 3)),
    ],
)
def test_an_error_path_is_renamed_to_the_stored_names(
    loc: tuple[str | int, ...], stored: tuple[str | int, ...]
) -> None:
    assert stored_loc(Spelled, loc) == stored


async def test_a_subclass_instance_is_stored_as_the_declared_model() -> None:
    ran = await _run(_workflow('"{{ steps.lookup.output.customer.customerId }}"', "subclass"))
    assert ran["doc"]["runtimeStatus"] == "Completed", ran["doc"]["error"]
    assert set(ran["lookup"]["outputData"]) == {"customer", "lines", "pay", "note", "lineCount"}


# -- #16: Optional and Union ------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (
            "customer.billing.zipCod",
            "customer.billing has no field 'zipCod' (its fields: zipCode); did you mean 'zipCode'?",
        ),
        (
            "pay.lastt4",
            "steps.lookup.output.pay has no field 'lastt4' (its fields: iban, last4); "
            "did you mean 'last4'?",
        ),
        ("note.text", "steps.lookup.output.note is a string or null, so it has no field 'text'"),
        ("pay[0]", "steps.lookup.output.pay is an object, not a list, so it has no item [0]"),
    ],
)
def test_a_typo_under_an_optional_or_a_union_is_named_like_any_other(
    read: str, expected: str
) -> None:
    (problem,) = _problems(f'"{{{{ steps.lookup.output.{read} }}}}"')
    assert expected in problem


# -- tour 23: a step that may suspend; bytes --------------------------------------------


class Token(BaseModel):
    token: str


class Blob(BaseModel):
    blob: bytes


def _finish(data: LookupInput, ctx: StepContext, state: Mapping[str, Any]) -> Token:
    return Token(token=state["token"])


@step_type("test.parks", resume=_finish)
async def parks(data: LookupInput, ctx: StepContext) -> Token | Suspend:
    if data.mode == "answer":
        return {"tokn": "t"}  # type: ignore[return-value]
    return Suspend(until=utcnow() + timedelta(milliseconds=20), state={"token": "t"})


@step_type("test.bytes")
async def binary(data: LookupInput, ctx: StepContext) -> Blob:
    return Blob(blob=b"\x89PNG\r\n\x1a\n\x00\xff")


async def test_a_step_that_may_suspend_keeps_its_output_model() -> None:
    """``-> Token | Suspend`` gave no output model: a misspelt reference to it passed
    validate, and its output went unchecked (tour 23 F4)."""
    registry = StepRegistry.with_builtins()
    registry.register(parks)
    text = textwrap.dedent(
        """
        name: parks
        steps:
          - {id: a, type: test.parks, input: {mode: %s}}
          - {id: b, type: sys.transform, input: {value: "{{ steps.a.output.%s }}"}}
        """
    )
    with pytest.raises(DefinitionError) as refused:
        load_workflow_text(text % ("park", "tokn"), registry, TemplateEngine(), "wf.yaml")
    assert "did you mean 'token'?" in str(refused.value)
    async with Engine("sqlite://", registry=registry) as engine:
        parked = await engine.run(engine.load_text(text % ("park", "token")))
        answered = await engine.run(engine.load_text(text % ("answer", "token")))
    assert parked["output"] is None and parked["runtimeStatus"] == "Completed", parked["error"]
    assert [s["outputData"] for s in parked["steps"].values()] == [{"token": "t"}, "t"]
    assert answered["runtimeStatus"] == "Failed"
    assert "output does not match the step's output model: token:" in answered["error"]["message"]


async def test_a_model_s_bytes_that_are_not_text_fail_the_step_naming_the_field() -> None:
    """Reported as "cannot be stored as JSON: UnicodeDecodeError: 'utf-8' codec can't
    decode byte 0x89", naming no field (tour 23 F10)."""
    registry = StepRegistry.with_builtins()
    registry.register(binary)
    async with Engine("sqlite://", registry=registry) as engine:
        text = "name: b\nsteps: [{id: a, type: test.bytes}]\n"
        doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == (
        "its output cannot be stored: output.blob holds bytes that are not UTF-8 text, which "
        "JSON cannot hold; save binary data as a file (ctx.artifacts.save) and return its "
        "description, or encode it (base64) as text"
    )

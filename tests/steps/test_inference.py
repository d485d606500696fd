"""steps.inference: which output models need the second, Python-mode dump that finds a
NaN or infinity JSON mode would write as null. Each answer is checked against what
pydantic actually does, so a model said to keep floats is one whose NaN survives the
JSON dump for ``to_plain`` to refuse."""

from __future__ import annotations

import math
from datetime import datetime
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, JsonValue, field_serializer, model_serializer

from flowledger.jsonvalues import NotJSONError, to_plain
from flowledger.steps.base import StepType
from flowledger.steps.builtins import ConditionOutput, DelayOutput, NoActionOutput
from flowledger.steps.inference import may_hide_non_finite


class Colour(Enum):
    RED = "red"


class Point(BaseModel):
    x: float
    ys: list[float] = []


class Typed(BaseModel):
    n: int = 0
    label: str | None = None
    points: list[Point] = []
    scores: dict[str, float] = {}
    pair: tuple[float, ...] = ()
    when: datetime | None = None
    colour: Colour = Colour.RED


class AnyField(BaseModel):
    value: Any = None


class BareDict(BaseModel):
    value: dict = {}  # type: ignore[type-arg]


class BareList(BaseModel):
    value: list = []  # type: ignore[type-arg]


class DictOfAny(BaseModel):
    value: dict[str, Any] = {}


class ObjectField(BaseModel):
    value: object = None


class Extra(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldSerializer(BaseModel):
    value: float = 0.0

    @field_serializer("value")
    def _same(self, value):  # type: ignore[no-untyped-def]  # untyped: dumped by inference
        return value


class ModelSerializer(BaseModel):
    value: float = 0.0

    @model_serializer
    def _dump(self):  # type: ignore[no-untyped-def]
        return {"value": self.value}


class Nested(BaseModel):
    inner: AnyField = AnyField()


class Json(BaseModel):
    value: JsonValue = None


KEEPS = [ConditionOutput, DelayOutput, NoActionOutput, Point, Typed]
#: Each with a NaN where JSON mode might write null.
HIDES: list[BaseModel] = [
    AnyField(value=math.nan),
    BareDict(value={"a": math.nan}),
    BareList(value=[math.inf]),
    DictOfAny(value={"a": [math.nan]}),
    ObjectField(value=math.nan),
    Extra(extra=math.nan),  # type: ignore[call-arg]
    FieldSerializer(value=math.nan),
    ModelSerializer(value=math.nan),
    Nested(inner=AnyField(value=math.nan)),
    Json(value={"a": math.nan}),
]


@pytest.mark.parametrize("model", KEEPS, ids=lambda m: m.__name__)
def test_a_model_typed_throughout_needs_one_dump(model: type[BaseModel]) -> None:
    assert may_hide_non_finite(model) is False


@pytest.mark.parametrize("instance", HIDES, ids=lambda i: type(i).__name__)
def test_a_model_with_an_inferred_place_needs_the_second_dump(instance: BaseModel) -> None:
    assert may_hide_non_finite(type(instance)) is True


def _stored(instance: BaseModel, declared: bool) -> Any:
    """What a step that returned ``instance`` stores, with ``instance``'s class declared as
    its output model or with none."""
    output_model = type(instance) if declared else None
    step_type = StepType(name="t.x", handler=None, input_model=BaseModel, output_model=output_model)
    return to_plain(step_type.dump_output(instance), "output")


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
@pytest.mark.parametrize("instance", HIDES, ids=lambda i: type(i).__name__)
def test_a_nan_where_json_mode_writes_null_is_still_refused(
    instance: BaseModel, declared: bool
) -> None:
    with pytest.raises(NotJSONError, match="JSON cannot hold"):
        _stored(instance, declared)


def test_a_nan_in_a_typed_float_survives_the_one_dump_to_be_refused() -> None:
    """The one dump is safe because JSON mode keeps a float field's NaN: ``to_plain``
    then refuses it with its place, as before."""
    instance = Typed(points=[Point(x=1.0, ys=[2.0, math.nan])])
    for declared in (True, False):
        with pytest.raises(NotJSONError, match=r"output\.points\[0\]\.ys\[1\] is nan"):
            _stored(instance, declared)

"""A failed union is said once, in the user's words, or as the branch the value fits."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from flowledger.errors import field_message, format_path
from flowledger.unions import plain_errors


class Retry(BaseModel):
    attempts: int


class Shapes(BaseModel):
    first: int = 0
    names: str | list[str] | None = None
    retry: Retry | list[Retry] | None = None
    size: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    headers: dict[str, int] | str = ""
    scalar: str | int | bool | dict[str, Any] = ""
    second: int = 0


def said(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Shapes.model_validate(data)
    return [
        f"{format_path(tuple(e['loc']))}: {field_message(e)}"
        for e in plain_errors(info.value.errors())
    ]


def test_a_value_of_no_branchs_shape_names_them_all() -> None:
    assert said({"names": 5}) == ["names: must be text or a list, not 5"]
    assert said({"scalar": [1]}) == [
        "scalar: must be text, a whole number, true or false, or a mapping, not [1]"
    ]
    assert said({"size": "big"}) == ['size: must be a whole number or one of auto, not "big"']


def test_a_value_of_one_branchs_shape_gets_that_branchs_errors() -> None:
    assert said({"names": ["a", 5]}) == ["names[1]: must be text, not 5"]
    assert said({"retry": [{"attempts": "x"}]}) == [
        'retry[0].attempts: must be a whole number, not "x"'
    ]
    assert said({"retry": {}}) == ["retry.attempts: is required"]
    assert said({"headers": {"a": "b"}}) == ['headers.a: must be a whole number, not "b"']
    assert said({"size": 0}) == ["size: must be at least 1, not 0"]


def test_errors_of_plain_fields_keep_their_order_around_a_union() -> None:
    assert said({"first": "a", "names": 5, "second": "b"}) == [
        'first: must be a whole number, not "a"',
        "names: must be text or a list, not 5",
        'second: must be a whole number, not "b"',
    ]


class Closed(BaseModel, extra="forbid"):
    name: str = ""
    retry: Retry | list[Retry] | None = None


def test_unknown_fields_named_like_a_type_stay_unknown_fields() -> None:
    """ "FALSE" and "USERNAME" look like a union's branches (a model's name): two of
    them made a union of no path, which crashed the job-run file's check (API fuzz)."""
    with pytest.raises(ValidationError) as info:
        Closed.model_validate({"FALSE": [], "USERNAME": "x", "Str": 1, "retry": {}})
    assert [(e["type"], tuple(e["loc"])) for e in plain_errors(info.value.errors())] == [
        ("missing", ("retry", "attempts")),
        ("extra_forbidden", ("FALSE",)),
        ("extra_forbidden", ("USERNAME",)),
        ("extra_forbidden", ("Str",)),
    ]


class Headed(BaseModel):
    headers: dict[str, str] = {}
    retry: Retry | list[Retry] | None = None


def test_capitalised_keys_of_a_mapping_keep_their_place_in_the_path() -> None:
    """Two headers named like models (``Authorization``, ``Accept``) with bad values were
    read as a union's branches: one error, at ``headers``, the keys gone."""
    with pytest.raises(ValidationError) as info:
        Headed.model_validate({"headers": {"Authorization": 5, "Accept": 6}, "retry": 1})
    assert [
        f"{format_path(tuple(e['loc']))}: {field_message(e)}"
        for e in plain_errors(info.value.errors())
    ] == [
        "headers.Authorization: must be text, not 5",
        "headers.Accept: must be text, not 6",
        "retry: must be a mapping or a list, not 1",
    ]

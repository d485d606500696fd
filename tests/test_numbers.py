"""A boolean is no number: pydantic's lax mode read ``true`` as 1."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import ValidationError

from flowledger.numbers import LENIENT, NumbersNotBooleans


class Some(NumbersNotBooleans):
    count: int = 0
    version: int | Literal["latest"] | None = None
    ratio: float = 0.0
    flag: bool = False
    anything: Any = None


@pytest.mark.parametrize("field", ["count", "version", "ratio"])
def test_a_number_field_refuses_a_boolean(field: str) -> None:
    with pytest.raises(ValidationError, match="must be a number, not true"):
        Some.model_validate({field: True})


def test_other_fields_and_numbers_as_text_are_taken() -> None:
    some = Some.model_validate({"count": "5", "flag": True, "anything": False, "version": 2})
    assert (some.count, some.flag, some.anything, some.version) == (5, True, False, 2)


def test_a_stored_definition_is_read_as_before() -> None:
    assert Some.model_validate({"count": True}, context=LENIENT).count == 1

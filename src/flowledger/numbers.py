"""Models whose number fields take numbers, not booleans.

pydantic's lax mode reads ``true`` as 1 for an ``int`` field: ``version: true`` started
version 1, ``concurrency: true`` ran a loop one at a time, and ``"version": true`` in a
request body was a 201. Text that holds a number ("5", from a query string or a form)
is still read as one; only booleans are refused, as the engine refuses them elsewhere
(``increment`` by ``true``, ``duration: true``).
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo, field_validator

#: The validation context that lets a boolean pass as before: a stored definition is
#: compiled again in every process, and one pushed before this rule must still load.
LENIENT = {"booleans_as_numbers": True}


class NumbersNotBooleans(BaseModel):
    """A base for models whose ``int`` and ``float`` fields refuse ``true`` and ``false``."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if value.__class__ is not bool:  # nearly every value: one check, nothing read
            return value
        context = info.context
        lenient = isinstance(context, dict) and bool(context.get("booleans_as_numbers"))
        if info.field_name is not None and not lenient:
            refused = boolean_refusal(cls, info.field_name, value)
            if refused is not None:
                raise ValueError(refused)
        return value


def boolean_refusal(model: type[BaseModel], field_name: str, value: Any) -> str | None:
    """Why ``value`` does not fit the model's field (a boolean for a number), or None."""
    if not isinstance(value, bool) or not issubclass(model, NumbersNotBooleans):
        return None
    field = model.model_fields.get(field_name)
    if field is None or not _takes_a_number_not_a_boolean(field.annotation):
        return None
    return f"must be a number, not {str(value).lower()}"


def _takes_a_number_not_a_boolean(annotation: Any) -> bool:
    """``int``, ``float``, or a union with one of them and no ``bool`` (``int | None``)."""
    if annotation is int or annotation is float:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        branches = get_args(annotation)
        return bool not in branches and any(_takes_a_number_not_a_boolean(b) for b in branches)
    return False

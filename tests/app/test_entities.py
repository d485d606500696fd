"""Entities through the application layer."""

from __future__ import annotations

import pytest

from flowledger.app import ListEntities
from flowledger.errors import InvalidInputError


def test_an_order_of_too_many_fields_is_named_as_the_request_names_it() -> None:
    with pytest.raises(InvalidInputError) as caught:
        ListEntities(entity_type="Lead", order_by=["Score"] * 33)
    assert caught.value.field_path == ("orderBy",)
    assert "order by up to 32 fields, not 33" in str(caught.value)

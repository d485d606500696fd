"""Forms read back as JSON (web.forms): each refusal names its field once, and JSON
typed into a form follows the rules of every JSON input (app.inputs)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flowledger.errors import InvalidInputError
from flowledger.web.forms import JSON_FIELD, fields_of, read_form

SCHEMA = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "title": "How many"},
        "tags": {"type": "array"},
        "ok": {"type": "boolean"},
    },
}


@pytest.mark.parametrize(
    ("form", "message", "field"),
    [
        ({"count": ["many"]}, "count: 'many' is not a valid integer", ("count",)),
        ({"ok": ["maybe"]}, "ok: choose true or false", ("ok",)),
        (
            {"tags": ["[1,"]},
            "tags: the value is not valid JSON (column 4): Expecting value",
            ("tags",),
        ),
        (
            {"tags": ['{"a": 1, "a": 2}']},
            'tags: the value is not valid JSON: the key "a" appears twice in one object',
            ("tags",),
        ),
        (
            {"tags": ["NaN"]},
            "tags: the value is not valid JSON: NaN is not a JSON number",
            ("tags",),
        ),
    ],
)
def test_a_value_not_of_its_type_names_its_field_once(
    form: dict[str, list[str]], message: str, field: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        read_form(SCHEMA, form)
    assert str(caught.value) == message
    assert caught.value.field_path == field


def test_values_of_their_types_are_read() -> None:
    form = {"count": ["3"], "tags": ['["x"]'], "ok": ["true"]}
    assert read_form(SCHEMA, form) == {"count": 3, "tags": ["x"], "ok": True}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"a": 1, "a": 2}', 'the key "a" appears twice in one object'),
        ("[1]", "give a JSON object"),
        ("{bad", "what you entered is not valid JSON (column 2)"),
    ],
)
def test_a_whole_document_typed_in_follows_the_json_rules(raw: str, message: str) -> None:
    schema: Any = {"type": "object", "additionalProperties": True}
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        read_form(schema, {JSON_FIELD: [raw]})


def test_list_types_give_the_field_of_their_one_named_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": ["string", "null"]},
            "n": {"type": ["null", "integer"]},
            "either": {"type": ["integer", "string"]},
            "odd": {"type": {"no": 1}},
        },
    }
    kinds = {f.name: f.kind for f in fields_of(schema)}
    assert kinds == {"note": "string", "n": "integer", "either": "json", "odd": "json"}
    assert read_form(schema, {"note": ["x"], "n": ["2"], "either": ["3"]}) == {
        "note": "x",
        "n": 2,
        "either": 3,
    }

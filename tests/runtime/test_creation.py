"""A start's input given through the Python API is held to the JSON rules of every
other face: converted as pydantic converts a model, or refused in words."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from flowledger import Engine
from flowledger.errors import InputError
from flowledger.storage import ExecutionQuery

WORKFLOW = """
name: echo
steps:
  - {id: a, type: sys.transform, input: {value: "{{ input.x }}"}}
"""


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ({1, 2}, [1, 2]),  # was stored as the text "{1, 2}"
        (("a", "b"), ["a", "b"]),
        (datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "2026-12-01T09:30:00Z"),
        ({"n": 2**70}, {"n": 2**70}),
    ],
)
async def test_python_values_are_stored_as_json(db_url: str, given: Any, stored: Any) -> None:
    async with Engine(db_url) as engine:
        doc = await engine.run(engine.load_text(WORKFLOW), {"x": given})
        assert doc["runtimeStatus"] == "Completed", doc["error"]
        [step] = doc["steps"].values()
        assert step["outputData"] == stored


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (math.nan, "input.x is nan, which JSON cannot hold"),  # was stored as null
        ({"deep": [math.inf]}, "input.x.deep[0] is inf, which JSON cannot hold"),
        ("a\ud800", r"input.x: holds a lone surrogate (\ud800); send valid Unicode"),
        # Kept by SQLite, refused by PostgreSQL: refused on both, as at every face.
        ("a\x00b", "input.x: must not contain NUL characters (U+0000)"),
        ({"k\x00": 1}, r"input.x.k\x00: must not contain NUL characters (U+0000)"),
        (object(), "input.x holds a value of type object, which has no JSON form"),
    ],
)
async def test_what_json_cannot_hold_is_refused_before_anything_is_stored(
    db_url: str, given: Any, message: str
) -> None:
    async with Engine(db_url) as engine:
        with pytest.raises(InputError) as refused:
            await engine.start(engine.load_text(WORKFLOW), {"x": given})
        assert str(refused.value) == message
        assert await engine.store.count_executions(ExecutionQuery()) == 0


DEFAULTS = """
name: defaults
input_schema:
  type: object
  properties:
    region: {type: string, default: EU}
    limits:
      type: object
      properties: {max: {type: integer, default: 10}, min: {type: integer}}
      default: {}
    tags: {type: array, default: [a]}
steps:
  - id: a
    type: sys.transform
    input: {value: "{{ input.region }} {{ input.limits.max }} {{ input.tags | length }}"}
"""


async def test_input_schema_defaults_fill_what_the_input_lacks(db_url: str) -> None:
    """A property's ``default`` was never applied: ``{{ input.region }}`` passed
    validation, and the run failed on "input.region does not exist"."""
    async with Engine(db_url) as engine:
        workflow = engine.load_text(DEFAULTS)
        doc = await engine.run(workflow, {})
        assert doc["runtimeStatus"] == "Completed", doc["error"]
        [step] = doc["steps"].values()
        assert step["outputData"] == "EU 10 1"
        given = {"region": "US", "limits": {"min": 1}}
        doc = await engine.run(workflow, given)
        [step] = doc["steps"].values()
        assert step["outputData"] == "US 10 1"  # a nested object gets its defaults too
        assert given == {"region": "US", "limits": {"min": 1}}  # the caller's dict as it was


@pytest.mark.parametrize("given", [[1, 2], "ab"])
async def test_an_input_that_is_not_a_mapping_is_refused_in_words(db_url: str, given: Any) -> None:
    async with Engine(db_url) as engine:
        with pytest.raises(InputError, match="the input must be a JSON object"):
            await engine.start(engine.load_text(WORKFLOW), given)

"""The codec's ``loads``: the C scanner's shortcut answers what ``json.loads`` answers."""

from __future__ import annotations

import json

import pytest

from flowledger.codec import loads


@pytest.mark.parametrize(
    "text",
    ["null", "{}", '{"value":0}', '{"type":"function","arguments":{}}', "[1,2.5,\"x\"]",
     ' {"a": 1} ', '{"a":1}\n', "NaN", '"\\u00e9t\\u00e9"', "-0", "1e400"],
)  # fmt: skip
def test_loads_is_json_loads(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))


def test_none_stays_none() -> None:
    assert loads(None) is None


@pytest.mark.parametrize("text", ["", "{", '{"a":1} x', "nul", "[1,]"])
def test_loads_refuses_what_json_refuses_in_its_words(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)

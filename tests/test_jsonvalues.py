"""jsonvalues: what the engine stores is refused where JSON cannot hold it, saying where."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from flowledger.jsonvalues import NotJSONError, lone_surrogate, storable, to_plain


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ({"a": [1, math.nan]}, "state.a[1] is nan, which JSON cannot hold"),
        ([math.inf], "state[0] is inf, which JSON cannot hold"),
        ({"a": "x\ud800"}, "state.a holds a lone surrogate (\\ud800), which UTF-8 cannot store"),
        # A key's surrogate is escaped: the message is stored too.
        ({"k\udc00": 1}, "state.k\\udc00 holds a lone surrogate (\\udc00), which UTF-8 cannot store"),
        ({"n": 10**5000}, "state.n is an integer of more than 4,300 digits, which JSON here cannot hold"),
    ],
)  # fmt: skip
def test_storable_refuses_what_json_or_utf8_cannot_hold_naming_where(value: Any, said: str) -> None:
    """Used for what nothing checked before it was stored: a variable's value, a Suspend's
    state, a StepError's details, the workflow's output (NaN became null; a surrogate or a
    long integer failed the commit)."""
    with pytest.raises(NotJSONError) as refused:
        storable(value, "state")
    assert str(refused.value) == said
    str(refused.value).encode("utf-8")  # storable itself


def test_storable_converts_as_an_output_is_and_ends_on_a_value_that_contains_itself() -> None:
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert storable({"when": when, "tags": ("a", "é")}, "value") == {
        "when": "2026-12-01T09:30:00Z",
        "tags": ["a", "é"],
    }
    cycle: dict[str, Any] = {"s": "\ud800"}
    cycle["self"] = cycle
    # The walk that says where visits each container once (it looped for ever).
    assert lone_surrogate(cycle, "output") == (
        "output.s holds a lone surrogate (\\ud800), which UTF-8 cannot store"
    )
    with pytest.raises(NotJSONError, match="contains itself"):
        storable(cycle, "value")


def test_bytes_that_are_not_text_are_named_as_bytes_where_they_are() -> None:
    """They were reported as a value that "contains itself, or is nested too deeply"
    (the converter's UnicodeDecodeError is a ValueError; tour 23 F10)."""
    with pytest.raises(NotJSONError) as refused:
        to_plain({"a": [1, {"blob": b"\x00\xff"}]}, "output")
    assert str(refused.value) == (
        "output.a[1].blob holds bytes that are not UTF-8 text, which JSON cannot hold; save "
        "binary data as a file (ctx.artifacts.save) and return its description, or encode "
        "it (base64) as text"
    )
    with pytest.raises(NotJSONError, match=r"^output holds bytes that are not UTF-8 text"):
        to_plain(bytearray(b"\xff"), "output")
    # UTF-8 bytes are text to pydantic, and stay so.
    assert to_plain({"a": b"ok"}, "output") == {"a": "ok"}

"""runtime.variables: the stored text of the variables, kept per variable and extended
by appends, is what dumping the whole mapping gives, redaction included."""

from __future__ import annotations

import contextlib
import functools
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.codec import Codec, loads, same_json
from flowledger.errors import StepError
from flowledger.runtime.journal import Journal
from flowledger.runtime.variables import Variables
from flowledger.storage import open_store
from flowledger.storage.base import Store
from flowledger.timeutil import Clock

SECRET = "hunter2-very-secret"


def _json_values(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | floats
        | st.sampled_from(["", "é", SECRET, f"x{SECRET}y", 'a"b\\c', "\u2028"]),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["k", "l", SECRET]), inner, max_size=3)
        ),
        max_leaves=8,
    )


#: Changes may bring NaN (refused, a StepError); stored variables never hold one.
json_values = _json_values(st.floats(allow_nan=True))
stored_values = _json_values(st.floats(allow_nan=False, allow_infinity=False))
changes = st.lists(
    st.tuples(
        st.sampled_from(["acc", "total", "seen", "new"]),
        st.sampled_from(["set", "increment", "append", "merge", "open the secret"]),
        json_values,
    ),
    max_size=25,
)


@functools.cache
def _unwritten_store() -> Store:
    """The journal reads its timestamp form; nothing is written. One for the module:
    opening a store costs ~35 ms, most of a generated example's time."""
    return open_store("sqlite://")


def variables_on(codec: Codec, initial: dict[str, Any]) -> Variables:
    return Variables(dict(initial), Journal(_unwritten_store(), codec, "e", 1, 0, Clock()))


@settings(max_examples=300, deadline=None)
@given(initial=st.dictionaries(st.sampled_from(["acc", "total"]), stored_values), steps=changes)
def test_the_stored_text_is_the_whole_mapping_dumped(
    initial: dict[str, Any], steps: list[tuple[str, str, Any]]
) -> None:
    codec = Codec()
    variables = variables_on(codec, {"acc": [], **initial})
    assert variables.stored() == codec.dumps(variables.values)
    for name, op, value in steps:
        if op == "open the secret":  # as a step's `secrets.X` does, mid-run
            codec.add_secret("token", SECRET)
        else:  # a StepError when the types do not fit: the variable is left as it was
            with contextlib.suppress(StepError):
                variables.apply(name, op, value)
        assert variables.stored() == codec.dumps(variables.values)
        if not codec.secrets_added:  # what is held is what a resumed run reads back
            assert same_json(loads(variables.stored()), variables.values)


def test_appends_extend_the_kept_text_and_a_secret_opened_later_is_redacted() -> None:
    codec = Codec()
    variables = variables_on(codec, {"acc": []})
    for item in (1, SECRET, {"a": [2]}):
        variables.apply("acc", "append", item)
    assert variables.stored() == f'{{"acc":[1,"{SECRET}",{{"a":[2]}}]}}'
    codec.add_secret("token", SECRET)
    variables.apply("acc", "append", None)
    assert SECRET not in variables.stored()
    assert variables.stored() == codec.dumps(variables.values)


@pytest.mark.parametrize(
    ("op", "start", "value", "said"),
    [
        ("increment", 1e308, 1e308, "cannot increment variable 'f': the result is too large for a number JSON can hold"),
        ("increment", 10**400, 1.5, "cannot increment variable 'f': the result is too large for a number JSON can hold"),
        ("set", 0, {"x": [math.nan]}, "cannot set variable 'f': value.x[0] is nan, which JSON cannot hold"),
        ("append", [], "a\ud800", "cannot append to variable 'f': value holds a lone surrogate (\\ud800), which UTF-8 cannot store"),
        ("merge", {}, {"k": math.inf}, "cannot merge into variable 'f': value.k is inf, which JSON cannot hold"),
    ],
)  # fmt: skip
def test_a_value_json_cannot_hold_fails_the_change_naming_the_variable(
    op: str, start: Any, value: Any, said: str
) -> None:
    """An increment overflowing to infinity was applied, and stored as null: the variable
    stayed inf in memory, so a resumed run read null where an uninterrupted one read inf."""
    codec = Codec()
    variables = variables_on(codec, {"f": start})
    with pytest.raises(StepError) as refused:
        variables.apply("f", op, value)
    assert refused.value.message == said and not refused.value.retryable
    assert variables.values == {"f": start}
    assert variables.stored() == codec.dumps({"f": start})


def test_a_value_is_held_as_it_is_stored() -> None:
    """A datetime was held as itself and stored as its str(): ``2026-12-01 09:30:00+00:00``
    in the database, a datetime to the steps of the same run."""
    variables = variables_on(Codec(), {"log": []})
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    variables.apply("when", "set", when)
    variables.apply("log", "append", (when, "done"))
    assert variables.values == {
        "log": [["2026-12-01T09:30:00Z", "done"]],
        "when": "2026-12-01T09:30:00Z",
    }
    assert loads(variables.stored()) == variables.values


def test_a_step_s_changes_apply_all_or_none() -> None:
    """A step's ctx.variables changes are applied when it completes, to the values then
    current: one that no longer fit (a concurrent step set the variable to text) raised
    out of the runner after the changes before it were applied."""
    codec = Codec()
    variables = variables_on(codec, {"n": 1, "c": "text"})
    before = variables.stored()
    with pytest.raises(StepError, match="cannot increment variable 'c'"):
        variables.apply_all([("n", "increment", 1), ("seen", "append", 1), ("c", "increment", 1)])
    assert variables.values == {"n": 1, "c": "text"}
    assert variables.stored() == before
    variables.apply_all([("n", "increment", 1), ("seen", "append", 1)])
    assert variables.values == {"n": 2, "c": "text", "seen": [1]}
    assert variables.stored() == codec.dumps(variables.values)

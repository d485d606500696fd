"""runtime.variables: the stored text of the variables, kept per variable and extended
by appends, is what dumping the whole mapping gives, redaction included."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.codec import Codec
from flowledger.errors import StepError
from flowledger.runtime.journal import Journal
from flowledger.runtime.variables import Variables
from flowledger.storage import open_store
from flowledger.timeutil import Clock

SECRET = "hunter2-very-secret"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.sampled_from(["", "é", SECRET, f"x{SECRET}y", 'a"b\\c', "\u2028"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["k", "l", SECRET]), inner, max_size=3)
    ),
    max_leaves=8,
)
changes = st.lists(
    st.tuples(
        st.sampled_from(["acc", "total", "seen", "new"]),
        st.sampled_from(["set", "increment", "append", "merge", "open the secret"]),
        json_values,
    ),
    max_size=25,
)


def variables_on(codec: Codec, initial: dict[str, Any]) -> Variables:
    store = open_store("sqlite://")  # the journal reads its timestamp form; nothing is written
    return Variables(dict(initial), Journal(store, codec, "e", 1, 0, Clock()))


@settings(max_examples=300, deadline=None)
@given(initial=st.dictionaries(st.sampled_from(["acc", "total"]), json_values), steps=changes)
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

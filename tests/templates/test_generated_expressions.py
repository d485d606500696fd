"""Generated expressions thrown at the template engine: repetition of shared references,
nesting, huge numbers, surrogates, NULs and markup in strings, filters that walk or
build. Each render ends in a value or a TemplateError, and its memory stays bounded
(traced allocations, not wall-clock time, so the test is deterministic)."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.errors import TemplateError
from flowledger.templates import TemplateEngine

ENGINE = TemplateEngine()
#: Far above what the limits let one render build (16 Mi units), far below trouble.
MEMORY_BOUND = 400 * 1024 * 1024

strings = st.sampled_from(["''", "'a'", "'\\ud800'", "'\\x00'", "'[/]'", "'ü'", "'a' * 1000000"])
numbers = st.sampled_from(["0", "1", "100000", "10**300", "2**4000", "1e308", "-1", "9" * 60])
atoms = st.one_of(strings, numbers, st.just("input"), st.just("[0]"), st.just("{'k': 1}"))
FILTERS = ["tojson", "string", "list", "sort", "length", "upper", "reverse", "unique", "first"]
FILTERS += ["join", "join(',')", "batch(3)", "sum", "max", "urlencode", "trim", "int", "float"]


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(children, children)
    return st.one_of(
        st.builds(lambda t: f"[{t[0]}, {t[1]}]", pair),
        st.builds(lambda t: f"({t[0]}) * ({t[1]})", pair),
        st.builds(lambda t: f"({t[0]}) + ({t[1]})", pair),
        st.builds(lambda t: f"({t[0]}) ~ ({t[1]})", pair),
        st.builds(lambda e, f: f"({e})|{f}", children, st.sampled_from(FILTERS)),
        st.builds(lambda e, n: f"[{e}] * {n}", children, numbers),
    )


expressions = st.recursive(atoms, _combine, max_leaves=12)


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(expressions, st.booleans())
def test_any_expression_is_a_value_or_a_template_error(expression: str, as_text: bool) -> None:
    source = f"x={{{{ {expression} }}}}" if as_text else f"{{{{ {expression} }}}}"
    tracemalloc.start()
    try:
        value = ENGINE.compile(source).render({"input": {"a": [1, "b"]}})
    except TemplateError as exc:
        value = exc  # refused, with our error: fine
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, (source, peak)
    if not isinstance(value, TemplateError):
        json.dumps(value)  # a JSON value (NaN and surrogates aside, which storage refuses)

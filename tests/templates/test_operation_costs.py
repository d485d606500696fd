"""The operation budget counts work at its cost, so a render that passes it holds the
event loop for a fraction of a second: each filter or test called by name on an item,
each item a test refuses, each pass in C over a list or a text a template reads, each
container sized or converted. Work is measured in steps and in Python calls, never by
the clock."""

from __future__ import annotations

import json
import sys
from types import FrameType
from typing import Any

import pytest

from flowledger.errors import TemplateLimitError
from flowledger.templates import TemplateEngine, TemplateLimits

#: The security review's expression (tour 20, F4): 60 ``map`` filters over 100,000 items,
#: 882 characters, the console's limit being 4,000. It took 3.5 s of a server's event loop
#: per request: the cap counted each filter call as one step, a tenth of its cost.
REVIEWED = (
    "{{ ((range(10000)|list)*10)" + "|map('string')" * 60 + "|list|length }}"
)  # fmt: skip

N = 100_000
DATA: dict[str, Any] = {
    "x": list(range(N)),
    "d": [{"a": i, "b": "x"} for i in range(N)],
    "text": "ab" * 500_000,
    "m": {str(i): i for i in range(N)},
}


def python_calls(source: str, context: dict[str, Any], limits: TemplateLimits | None = None) -> int:
    """How many Python and C functions rendering ``source`` called before it was refused
    (it must be): the work a render does, counted, not timed."""
    template = TemplateEngine(limits).compile(source)
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        with pytest.raises(TemplateLimitError, match="steps"):
            template.render(context)
    finally:
        sys.setprofile(None)
    return calls


def test_the_reviewed_expression_is_refused_after_a_fraction_of_the_work() -> None:
    assert len(REVIEWED) == 882
    # About 1.6 million calls, a fraction of a second; the cap let 14 million happen.
    assert python_calls(REVIEWED, {}) < 4_000_000


def _refused(source: str, max_operations: int, context: dict[str, Any] | None = None) -> None:
    engine = TemplateEngine(TemplateLimits(max_operations=max_operations))
    with pytest.raises(TemplateLimitError, match=f"more than {max_operations:,} steps"):
        engine.compile(source).render(context or DATA)


@pytest.mark.parametrize(
    "source",
    [
        # A filter or test called by name costs about ten steps: 10,000 calls are not
        # 10,000 steps.
        "{{ x[:10000]|map('string')|list|length }}",
        "{{ x[:10000]|map('abs')|list|length }}",
        "{{ d[:10000]|selectattr('a', 'equalto', 1)|list|length }}",
        # select counted only the items it kept: a test keeping none ran for free.
        "{{ x[:30000]|select('none')|list|length }}",
        "{{ x[:30000]|reject('number')|list|length }}",
        # Jinja's generators pass items on in Python: items, batch.
        "{{ m|items|list|length }}",
        "{{ x|batch(1000)|list|length }}",
        "{{ x|slice(3)|list|length }}",
        # An attribute looked up on each item, a sort key computed for each.
        "{{ d|sum(attribute='a') }}",
        "{{ m|dictsort|length }}",
        # flatten looks at each item in Python.
        "{{ x|flatten|length }}",
        # Sizing 100,000 small objects for the budgets (a repetition, a sort's input)
        # took a second.
        "{{ ([d] * 2)|length }}",
        # Converting data to JSON walks it in Python.
        "{{ d|tojson|length }}",
    ],
)
def test_work_item_by_item_counts_at_its_cost(source: str) -> None:
    _refused(source, 50_000)


@pytest.mark.parametrize(
    "source",
    [
        # Passes in C over a list or text the template reads, by the thousand: each about
        # a millisecond, uncounted, a few seconds in one render.
        "{{ [" + ", ".join(["-1 in x"] * 200) + "]|length }}",
        "{{ [" + ", ".join(["-1 is in x"] * 200) + "]|length }}",
        "{{ [" + ", ".join(["x == x[:]"] * 200) + "]|length }}",
        "{{ [" + ", ".join(["x|sum"] * 200) + "]|length }}",
        "{{ [" + ", ".join(["m.values()|sum"] * 200) + "]|length }}",
        "{{ [" + ", ".join(["x[1:]|length"] * 200) + "]|length }}",
        "{{ [" + ", ".join(["'zz' in text"] * 200) + "]|length }}",
        "{{ [" + ", ".join(["text.count('b')"] * 200) + "]|length }}",
    ],
)
def test_passes_in_c_over_what_a_template_reads_count(source: str) -> None:
    _refused(source, 1_000_000)


def test_a_test_walking_its_argument_for_each_item_counts_the_walks() -> None:
    """``select('in', x)`` walks x once per item: 500 items of a 100,000-item list ran
    for seconds with no step counted (none was kept)."""
    _refused("{{ ([-1] * 500)|select('in', x)|list|length }}", 1_000_000)


def test_ordinary_templates_stay_well_within_the_budget() -> None:
    """A filter by name over 50,000 items, an attribute over 100,000, a sort of them, a
    walk over each, 30,000 objects as JSON: each fits the default budget."""
    engine = TemplateEngine()
    ok = {
        "{{ x[:50000]|map('string')|join(',')|length }}": len(",".join(map(str, range(50_000)))),
        "{{ d|map(attribute='a')|sum }}": sum(range(N)),
        "{{ x[:50000]|select('odd')|list|length }}": 25_000,
        "{{ (x|sort(reverse=true))[0] }}": N - 1,
        "{{ 99999 in x and 'zz' not in text }}": True,
        "{{ d[:20000]|selectattr('a', 'lt', 10)|list|length }}": 10,
        "{{ d[:30000]|tojson|length }}": len(json.dumps(DATA["d"][:30000], separators=(",", ":"))),
    }
    for source, expected in ok.items():
        assert engine.compile(source).render(DATA) == expected, source

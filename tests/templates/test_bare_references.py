"""A bare read (``{{ steps.a.output.x }}``) skips Jinja yet answers exactly as Jinja does."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.errors import TemplateError
from flowledger.templates import Template, TemplateEngine
from flowledger.templates.bare import bare_path
from flowledger.templates.compiler import BareTemplate, _compile
from tests.templates.support import ENGINE, data_store


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("{{ steps.a.output.x }}", ("steps", "a", "output", "x")),
        ("{{steps}}", ("steps",)),
        ("  {{ loop.each.item }}\n", ("loop", "each", "item")),
        ("{{ steps.a.output.x + 1 }}", None),
        ("{{ steps.a.output[0] }}", None),
        ("{{ steps.a._secret }}", None),
        ("{{ __steps__.a }}", None),
        ("{{ true }}", None),
        ("{{ range }}", None),
        ("{{ steps.not }}", None),
        ("{{- steps.a -}}", None),
        ("a {{ steps.a }}", None),
        ("{{ steps.a }}{{ steps.b }}", None),
    ],
)
def test_only_plain_dotted_reads_take_the_bare_path(
    source: str, path: tuple[str, ...] | None
) -> None:
    assert bare_path(source) == path
    assert isinstance(ENGINE.compile(source), BareTemplate) is (path is not None)


READS = [
    "{{ steps.query_leads.output.totalCount }}",
    "{{ steps.query_leads.output }}",
    "{{ steps.query_leads.output.entities }}",
    "{{ steps.fetch.output.items }}",  # a key named like a dict method: the key wins
    "{{ steps.fetch.output.keys }}",
    "{{ variables.label }}",
    "{{ loop.process_items.item.payload.Email }}",
]
MISSES = [
    "{{ steps.query_leads.output.missing }}",
    "{{ steps.nope.output }}",
    "{{ nothing }}",
    "{{ variables.label.upper }}",  # a str method: only the full template can say
    "{{ steps.query_leads.output.entities.first }}",
]


def _full(source: str) -> Any:
    return _compile(TemplateEngine()._env, source)


@pytest.mark.parametrize("source", READS)
def test_bare_reads_render_the_same_value(source: str) -> None:
    store = data_store()
    assert ENGINE.compile(source).render(store) == _full(source).render(store)


@pytest.mark.parametrize("source", MISSES)
def test_bare_misses_fail_or_answer_like_jinja(source: str) -> None:
    store = data_store()
    assert _outcome(ENGINE.compile(source), store) == _outcome(_full(source), store)


def _outcome(template: Template, store: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("value", template.render(store))
    except TemplateError as exc:
        return (type(exc).__name__, str(exc))


def test_bare_references_are_collected_for_validation() -> None:
    template = ENGINE.compile("{{ steps.a.output.x }}")
    assert [(r.root, r.path, r.complete) for r in template.references] == [
        ("steps", ("a", "output", "x"), True)
    ]
    assert template.references == _full("{{ steps.a.output.x }}").references

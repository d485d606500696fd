"""Native values for a lone expression, JSON-spelled text for everything else."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from flowledger.templates import TemplateEngine, contains_template
from flowledger.templates.filters import ALLOWED_FILTERS
from tests.templates.support import ENGINE, data_store, render


def test_contains_template_looks_for_double_braces() -> None:
    assert contains_template("{{ x }}")
    assert contains_template("a {{")
    assert not contains_template("{ x }")
    assert not contains_template("{% if %}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ steps.query_leads.output.totalCount }}", 3),
        ("{{ steps.query_leads.output.hasMore }}", False),
        ("{{ none }}", None),
        ("{{ 1.5 }}", 1.5),
        ("{{ variables }}", {"total": 2, "label": "Leads"}),
        ("{{ [1, 'a', none] }}", [1, "a", None]),
        ("{{ {'a': true} }}", {"a": True}),
        ("  {{ variables.total }}\n ", 2),
        ("{{ (1, 2) }}", [1, 2]),
        ("{{ range(3) }}", [0, 1, 2]),
        ("{{ variables.keys() }}", ["total", "label"]),
        ("{{ steps.query_leads.output.entities|map(attribute='id') }}", [1, 2, 3]),
        ("{{ __steps__.query_leads.outputData.totalCount }}", 3),
    ],
)
def test_single_expression_returns_the_native_value(source: str, expected: Any) -> None:
    template = ENGINE.compile(source)
    assert template.native
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("n={{ variables.total }}", "n=2"),
        ("{{ true }}/{{ false }}/{{ none }}", "true/false/null"),
        ("x: {{ {'a': [1, none]} }}", 'x: {"a":[1,null]}'),
        ("{{ 1.5 }} {{ 'é' }}", "1.5 é"),
        ("{{ variables.total }}{{ variables.total }}", "22"),
        ("[{{ variables.label }}]", "[Leads]"),
        ("<{{ 'a' ~ true ~ none ~ [1] }}>", "<atruenull[1]>"),
        ("a{{ 'b' if false }}c", "ac"),
    ],
)
def test_other_strings_render_to_text_with_json_spelling(source: str, expected: str) -> None:
    assert not ENGINE.compile(source).native
    assert render(source) == expected


def test_object_in_text_is_compact_json_in_key_order() -> None:
    text = render("out={{ steps.query_leads.output }}")
    assert text.startswith('out={"entities":[{"id":1,"Email":"a@x.io"}')
    assert text.endswith('"totalCount":3,"hasMore":false}')


def test_literal_text_is_kept_byte_for_byte() -> None:
    assert render("a\r\nb {{ 1 }}\r\n") == "a\r\nb 1\r\n"
    assert render("{{ 1 }}\n\n") == 1  # whitespace around a lone expression: still native
    assert render("x {{- ' y ' -}} \n z") == "x y z"


def test_braces_inside_strings_do_not_end_the_expression() -> None:
    assert render('{{ "}}" }}') == "}}"
    assert render('a {{ "{{" ~ "}}" }} b') == "a {{}} b"


def test_data_is_never_evaluated() -> None:
    assert render("{{ steps.fetch.output.body.n }}") == "{{7*7}}"
    assert render("got {{ steps.fetch.output.body }}") == 'got {"n":"{{7*7}}"}'


def test_mapping_keys_named_like_methods_are_data() -> None:
    assert render("{{ steps.fetch.output.items }}") == [1, 2]
    assert render("{{ steps.fetch.output.keys }}") == "K"
    assert render("{{ {'get': 1, 'values': 2}.get }}") == 1
    assert render("{{ {'values': 2}['values'] }}") == 2


def test_mapping_methods_are_available_when_no_key_shadows_them() -> None:
    assert render("{{ variables.get('nope', 5) }}") == 5
    assert render("{{ variables.items() }}") == [["total", 2], ["label", "Leads"]]
    assert render("{{ variables.values()|list }}") == [2, "Leads"]


def test_safe_string_methods_can_be_called() -> None:
    assert render("{{ variables.label.lower() }}") == "leads"
    assert render("{{ 'a,b'.split(',') }}") == ["a", "b"]
    assert render("{{ ' x '.strip() ~ '|' }}") == "x|"
    assert render("{{ 'abc'.startswith('a') }}") is True


def test_concatenation_uses_the_same_spelling_as_text() -> None:
    assert render("{{ 'n=' ~ true }}") == render("n={{ true }}") == "n=true"


def test_default_and_defined_work_on_long_missing_paths() -> None:
    assert render("{{ steps.ghost.output.deep.er|default('n/a') }}") == "n/a"
    assert render("{{ steps.ghost.output is defined }}") is False
    assert render("{{ variables.total|d(0) }}") == 2


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ [3, 1, 2]|sort|join(', ') }}", "1, 2, 3"),
        ("{{ [true, none]|join(',') }}", "true,null"),
        ("{{ 'a,b'|replace(',', ';') }}", "a;b"),
        ("{{ '42'|int + 1 }}", 43),
        ("{{ '42.5'|int }}", 42),
        ("{{ 'x'|int(7) }}", 7),
        ("{{ '2.5'|float }}", 2.5),
        ("{{ 1.2345|round(2) }}", 1.23),
        ("{{ [1, 2, 3]|sum }}", 6),
        ("{{ {'a': [1]}|tojson }}", '{"a":[1]}'),
        ("{{ none|string }}", "null"),
        ("{{ [1, 2, 3, 4]|batch(3)|list }}", [[1, 2, 3], [4]]),
        ("{{ [1, 2, 3]|slice(2)|list }}", [[1, 2], [3]]),
        ("{{ 'Ab'|upper ~ 'Ab'|lower }}", "ABab"),
        ("{{ range(5)|select('odd')|list }}", [1, 3]),
        ("{{ steps.query_leads.output.entities|selectattr('Email', 'defined')|list|length }}", 1),
        ("{{ {'b': 1, 'a': 2}|dictsort }}", [["a", 2], ["b", 1]]),
        ("{{ 0|bool }}", False),
        ("{{ {'q': 'a b'}|urlencode }}", "q=a+b"),
        ("{{ [1, 1, 2]|unique|list }}", [1, 2]),
        # One level: list items give their items, other items stay (pages into one list).
        ("{{ [[1, 2], [3], 4, [], [[5]]]|flatten }}", [1, 2, 3, 4, [5]]),
        ("{{ [{'p': [1]}, {'p': [2, 3]}]|map(attribute='p')|flatten }}", [1, 2, 3]),
        ("{{ ['1', '2']|map('int')|list }}", [1, 2]),
        ("{{ ['ab', 'b']|map('replace', 'b', 'c')|join('/') }}", "ac/c"),
    ],
)
def test_allowed_filters(source: str, expected: Any) -> None:
    assert render(source) == expected


def test_compile_is_cached_per_engine() -> None:
    engine = TemplateEngine()
    assert engine.compile("{{ a }}") is engine.compile("{{ a }}")
    assert engine.compile("{{ a }}") is not TemplateEngine().compile("{{ a }}")


def test_concurrent_compiles_share_one_object() -> None:
    engine = TemplateEngine()
    results: list[object] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(engine.compile("{{ steps.q.output }} and more"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result is results[0] for result in results)


def test_templates_are_reusable_and_do_not_touch_the_context() -> None:
    template = ENGINE.compile("{{ steps.query_leads.output.entities|sort(attribute='id') }}")
    store = data_store()
    before = repr(store)
    for _ in range(3):
        assert [e["id"] for e in template.render(store)] == [1, 2, 3]
    assert repr(store) == before


def test_template_objects_are_immutable() -> None:
    template = ENGINE.compile("{{ a }}")
    with pytest.raises(AttributeError):
        template.source = "{{ b }}"  # type: ignore[misc]


def test_the_readme_lists_exactly_the_allowed_filters() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    listed = readme.split("The filters: ", 1)[1].split(".\n", 1)[0]
    assert set(re.findall(r"`([a-z]+)`", listed)) == ALLOWED_FILTERS

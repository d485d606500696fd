"""compile_value: JSON values whose strings may be templates."""

from __future__ import annotations

import pytest

from flowledger.errors import TemplateSyntaxError
from flowledger.templates import TemplateEngine
from tests.templates.support import ENGINE, data_store


def test_constant_value_is_returned_as_is() -> None:
    value = {"a": [1, {"b": "plain"}], "c": None}
    compiled = ENGINE.compile_value(value)
    assert compiled.is_constant
    assert list(compiled.templates()) == []
    assert compiled.render(data_store()) is value


def test_nested_templates_render_and_constant_subtrees_are_shared() -> None:
    constant = {"method": "POST", "headers": {"x": "1"}}
    value = {
        "static": constant,
        "json": {"email": "{{ loop.process_items.item.payload.Email }}", "n": 5},
        "list": ["a", "{{ variables.total }}", ["{{ variables.label }} ok"]],
        "tuple": ("{{ 1 }}", "x"),
    }
    compiled = ENGINE.compile_value(value)
    assert not compiled.is_constant
    rendered = compiled.render(data_store())
    assert rendered == {
        "static": constant,
        "json": {"email": "b@x.io", "n": 5},
        "list": ["a", 2, ["Leads ok"]],
        "tuple": (1, "x"),
    }
    assert rendered is not value
    assert rendered["static"] is constant  # constant subtree shared, not copied
    assert value["json"]["email"] == "{{ loop.process_items.item.payload.Email }}"  # not mutated


def test_templates_lists_paths_in_document_order() -> None:
    compiled = ENGINE.compile_value({"a": "{{ x }}", "b": [1, {"c": "y {{ z }}"}], "d": 2})
    paths = [(path, template.source) for path, template in compiled.templates()]
    assert paths == [(("a",), "{{ x }}"), (("b", 1, "c"), "y {{ z }}")]


def test_a_template_string_as_the_whole_value() -> None:
    compiled = ENGINE.compile_value("{{ variables.total }}")
    assert [path for path, _ in compiled.templates()] == [()]
    assert compiled.render(data_store()) == 2


def test_keys_are_never_templates() -> None:
    compiled = ENGINE.compile_value({"{{ k }}": 1})
    assert compiled.is_constant


def test_compile_value_reuses_the_engine_cache() -> None:
    engine = TemplateEngine()
    compiled = engine.compile_value({"a": "{{ x }}"})
    [(_, template)] = list(compiled.templates())
    assert template is engine.compile("{{ x }}")


def test_syntax_error_names_the_path_inside_the_value() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        ENGINE.compile_value({"json": {"email": "{{ x + }}"}})
    assert caught.value.message.startswith("json.email: template syntax error in")
    assert caught.value.source == "{{ x + }}"


def test_compiled_values_are_immutable() -> None:
    compiled = ENGINE.compile_value({"a": "{{ x }}"})
    with pytest.raises(AttributeError):
        compiled.is_constant = True  # type: ignore[misc]

"""Only expressions: statements, comments and bad syntax are compile errors that explain."""

from __future__ import annotations

import pytest

from flowledger.errors import TemplateSecurityError, TemplateSyntaxError
from tests.templates.support import ENGINE


@pytest.mark.parametrize(
    "source",
    [
        "{% if x %}a{% endif %}",
        "{% for i in range(3) %}{{ i }}{% endfor %}",
        "{% set x = 1 %}{{ x }}",
        "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
        "text {% raw %}{{ x }}{% endraw %}",
    ],
)
def test_statements_are_not_supported(source: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        ENGINE.compile(source)
    message = caught.value.message
    assert "statements" in message
    assert "are not supported" in message
    assert "use an expression" in message
    assert "filter" in message
    assert caught.value.source == source


def test_comments_are_not_supported() -> None:
    with pytest.raises(TemplateSyntaxError, match=r"comments .* are not supported"):
        ENGINE.compile("{# note #}{{ x }}")


@pytest.mark.parametrize(
    ("source", "quoted"),
    [
        ("{{ x + }}", "{{ x + }}"),
        ("a {{ ok }} b {{ x y }}", "{{ x y }}"),
        ("{{ }}", "{{ }}"),
        ("{{ x", "{{ x"),
        ("{{ 'unclosed }}", "{{ 'unclosed }}"),
        ("{{ x.0a }}", "{{ x.0a }}"),
    ],
)
def test_syntax_errors_quote_the_expression(source: str, quoted: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        ENGINE.compile(source)
    assert caught.value.message.startswith(f'template syntax error in "{quoted}": ')
    assert caught.value.source == source


@pytest.mark.parametrize(
    "name", ["format", "attr", "center", "indent", "wordwrap", "pprint", "filesizeformat"]
)
def test_removed_filters_are_refused_at_compile_time(name: str) -> None:
    with pytest.raises(TemplateSecurityError) as caught:
        ENGINE.compile(f"{{{{ x|{name} }}}}")
    assert f"the filter '{name}' is not allowed" in caught.value.message
    assert "allowed filters: abs, batch, bool," in caught.value.message


def test_unknown_filters_and_tests_are_syntax_errors() -> None:
    with pytest.raises(TemplateSyntaxError, match="unknown filter 'nope'"):
        ENGINE.compile("{{ x|nope }}")
    with pytest.raises(TemplateSyntaxError, match="unknown test 'nope'"):
        ENGINE.compile("{{ x is nope }}")


def test_filter_names_passed_to_map_and_select_are_checked() -> None:
    with pytest.raises(TemplateSecurityError, match="'format'"):
        ENGINE.compile("{{ xs|map('format', 1)|list }}")
    with pytest.raises(TemplateSyntaxError, match="unknown test 'nope'"):
        ENGINE.compile("{{ xs|selectattr('a', 'nope')|list }}")
    ENGINE.compile("{{ xs|map(attribute='format')|list }}")  # a field name, not a filter


def test_jinja_tests_are_available() -> None:
    assert ENGINE.compile("{{ 3 is odd and 'a' is string and none is none }}").render({})

"""Known Jinja2 sandbox escapes (SSTI payloads and CVE reproductions) are all refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowledger.errors import (
    TemplateError,
    TemplateReferenceError,
    TemplateSecurityError,
    TemplateSyntaxError,
)
from tests.templates.support import ENGINE, data_store

Sec, Ref, Syn = TemplateSecurityError, TemplateReferenceError, TemplateSyntaxError

# (payload, the error it must raise). MARKER is replaced by a file path the
# payload would create if it ever ran a shell command.
PAYLOADS: list[tuple[str, type[TemplateError]]] = [
    # PayloadsAllTheThings, Jinja2 section
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", Sec),
    ("{{ ''.__class__.__base__.__subclasses__()[40]('/etc/passwd').read() }}", Sec),
    ("{{ [].__class__.__base__.__subclasses__() }}", Sec),
    ("{{ ().__class__.__bases__[0].__subclasses__() }}", Sec),
    ("{{ self.__init__.__globals__.__builtins__.__import__('os').popen('touch MARKER') }}", Sec),
    ("{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}", Sec),
    ("{{ self._TemplateReference__context.joiner.__init__.__globals__.os }}", Sec),
    ("{{ self._TemplateReference__context.namespace.__init__.__globals__.os }}", Sec),
    ("{{ self }}", Sec),
    ("{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}", Sec),
    ("{{ joiner.__init__.__globals__.os.popen('touch MARKER').read() }}", Sec),
    ("{{ namespace.__init__.__globals__.os.popen('touch MARKER').read() }}", Sec),
    ("{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}", Sec),
    ("{{ lipsum.__globals__.__builtins__.__import__('os').system('touch MARKER') }}", Sec),
    ("{{ config.__class__.__init__.__globals__['os'].popen('touch MARKER').read() }}", Sec),
    ("{{ url_for.__globals__.os.popen('touch MARKER').read() }}", Sec),
    ("{{ get_flashed_messages.__globals__.__builtins__.open('/etc/passwd').read() }}", Sec),
    ("{{ request.application.__globals__.__builtins__.__import__('os') }}", Sec),
    (
        "{{ request|attr('application')|attr('\\x5f\\x5fglobals\\x5f\\x5f')"
        "|attr('\\x5f\\x5fgetitem\\x5f\\x5f')('\\x5f\\x5fbuiltins\\x5f\\x5f')"
        "|attr('\\x5f\\x5fgetitem\\x5f\\x5f')('\\x5f\\x5fimport\\x5f\\x5f')('os')"
        "|attr('popen')('touch MARKER')|attr('read')() }}",
        Sec,
    ),
    ("{{ ''|attr('__class__') }}", Sec),
    ("{{ lipsum|attr('__globals__') }}", Sec),
    ("{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}", Sec),
    ("{{ ''['__cla' ~ 'ss__'] }}", Sec),
    ("{{ input.region[variables.dunder] }}", Sec),
    ("{{ x.__dict__ }}", Sec),
    ("{{ x.__init__ }}", Sec),
    ("{{ ''.__doc__ }}", Sec),
    ("{{ steps.__len__() }}", Sec),
    ("{{ __builtins__ }}", Sec),
    ("{{ range.__self__ }}", Sec),
    ("{{ (range(3)|map('string')).gi_frame.f_globals }}", Sec),
    ("{{ x.mro() }}", Sec),
    ("{{ ['a']|map(attribute='__class__')|list }}", Sec),
    ("{{ ['b', 'a']|sort(attribute='__class__') }}", Sec),
    ("{{ ['a']|selectattr('__class__')|list }}", Sec),
    ("{{ 'x'|map('attr', '__class__')|list }}", Sec),
    # Jinja sandbox CVEs: str.format / format_map / |attr('format')
    ("{{ '{0.__class__.__mro__}'.format(x) }}", Sec),  # CVE-2016-10745
    ("{{ '{0.__init__.__globals__}'.format(steps.get) }}", Sec),
    ("{{ '{0.__class__}'.format_map(variables) }}", Sec),  # CVE-2019-10906
    ("{{ ('{0.__class__}'|attr('format'))(x) }}", Sec),  # CVE-2025-27516
    ("{{ variables.label.format }}", Sec),  # a stored .format (CVE-2024-56326)
    ("{% set f = '{0.__class__}'.format %}{{ f|custom_filter }}", Syn),  # CVE-2024-56326
    ("{{ x|xmlattr }}", Sec),  # CVE-2024-22195
    ("{{ x|urlize }}", Sec),  # CVE-2020-28493
    # statements carry most published payloads; none are accepted
    (
        "{% for c in ().__class__.__base__.__subclasses__() %}{% if 'warning' in c.__name__ %}"
        "{{ c()._module.__builtins__['__import__']('os').popen('touch MARKER').read() }}"
        "{% endif %}{% endfor %}",
        Syn,
    ),
    ("{% import 'os' as os %}{{ os.system('touch MARKER') }}", Syn),
    ("{% include '/etc/passwd' %}", Syn),
    ("{% extends '/etc/passwd' %}", Syn),
    ("{% debug %}", Syn),
    ("{% raw %}{{ x }}{% endraw %}", Syn),
    ("{# {{ x.__class__ }} #}", Syn),
    # our own names and Jinja's default globals
    ("{{ config }}", Ref),
    ("{{ env }}", Ref),
    ("{{ config.items() }}", Ref),
    ("{{ dict(a=1) }}", Ref),
    ("{{ lipsum() }}", Ref),
    ("{{ cycler(1, 2) }}", Ref),
    ("{{ namespace() }}", Ref),
    ("{{ steps.get.__self__ }}", Sec),
    ("{{ steps['__class__'] }}", Sec),
    # callables outside the allow-list
    ("{{ x.center(10) }}", Sec),
    ("{{ x.encode('utf-8') }}", Sec),
    ("{{ '-'.join(['a']) }}", Sec),
    ("{{ (1.5).hex() }}", Sec),
    ("{{ x|format(1) }}", Sec),
]


@pytest.fixture
def context() -> dict[str, Any]:
    store = data_store()
    store["x"] = "abc"
    store["variables"]["dunder"] = "__class__"
    return store


def attempt(payload: str, context: dict[str, Any]) -> Any:
    return ENGINE.compile(payload).render(context)


def test_at_least_forty_payloads_are_covered() -> None:
    assert len(PAYLOADS) >= 40


@pytest.mark.parametrize(("payload", "expected"), PAYLOADS)
def test_payload_is_refused_and_nothing_runs(
    payload: str, expected: type[TemplateError], context: dict[str, Any], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(expected):
        attempt(payload.replace("MARKER", str(marker)), context)
    assert not marker.exists()


def test_refused_attribute_is_an_error_not_an_empty_string(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateSecurityError) as caught:
        attempt("value: {{ x.__class__ }}", context)
    assert "'__class__' is not accessible" in caught.value.message


def test_call_refusal_names_the_callable(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateSecurityError) as caught:
        attempt("{{ x.zfill(10) }}", context)
    assert "str.zfill()" in caught.value.message


def test_templates_cannot_change_data(context: dict[str, Any]) -> None:
    before = repr(context)
    with pytest.raises(TemplateSecurityError):
        attempt("{{ steps.fetch.output.items.append(1) }}", context)
    with pytest.raises(TemplateSecurityError):
        attempt("{{ steps.fetch.output.items.pop() }}", context)
    with pytest.raises(TemplateSecurityError):
        attempt("{{ [1].extend([2]) }}", context)
    with pytest.raises(TemplateReferenceError):  # only get/keys/values/items exist on objects
        attempt("{{ variables.update({}) }}", context)
    with pytest.raises(TemplateReferenceError):
        attempt("{{ steps.update({'x': 1}) }}", context)
    with pytest.raises(TemplateReferenceError):
        attempt("{{ variables.clear() }}", context)
    assert repr(context) == before


def test_second_order_injection_stays_literal(context: dict[str, Any]) -> None:
    context["steps"]["http"] = {"output": {"n": "{{7*7}}", "s": "{% debug %}"}}
    assert attempt("{{ steps.http.output.n }}", context) == "{{7*7}}"
    assert attempt("n={{ steps.http.output.n }}", context) == "n={{7*7}}"
    assert attempt("{{ steps.http.output.s ~ '' }}", context) == "{% debug %}"

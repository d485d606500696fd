"""Templates that read nothing, known before the run by rendering them.

``concurrency: "{{ 0 }}"`` or ``max_iterations: "{{ -1 }}"`` reads no data: it renders
the same value at every run. Left as a template, the input model could not see it until
the step ran, and failed it then, where the literal ``0`` is refused by validate. Such a
template (no reads at all; the only global, ``range``, and every filter are pure) is
rendered here, under the engine's limits, and the input is checked with the value in its
place, so it gets the literal's message at the template's position.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from flowledger.errors import TemplateError
from flowledger.templates import Template, contains_template


def rendered_constants(
    given: Any, compile_source: Callable[[str], Template], keep: Collection[str] = ()
) -> Any:
    """``given`` (a step's input as written) with each template that reads nothing
    replaced by the value it renders to; the top-level fields in ``keep`` (rendered
    elsewhere, such as sys.loop's ``until``) stay as written, as does a template that
    does not compile or fails to render (the run says why). ``given`` itself when
    nothing changes."""
    if not isinstance(given, Mapping):
        return _resolved(given, compile_source)
    changed = False
    out: dict[Any, Any] = {}
    for key, value in given.items():
        out[key] = value if key in keep else _resolved(value, compile_source)
        changed = changed or out[key] is not value
    return out if changed else given


def _resolved(value: Any, compile_source: Callable[[str], Template]) -> Any:
    if isinstance(value, str):
        return _constant(value, compile_source) if contains_template(value) else value
    if isinstance(value, Mapping):
        items = {key: _resolved(item, compile_source) for key, item in value.items()}
        same = all(items[key] is item for key, item in value.items())
        return value if same else items
    if isinstance(value, list):
        listed = [_resolved(item, compile_source) for item in value]
        return value if all(a is b for a, b in zip(listed, value, strict=True)) else listed
    return value


def _constant(source: str, compile_source: Callable[[str], Template]) -> Any:
    try:
        template = compile_source(source)
        if template.references:
            return source
        return template.render({})
    except TemplateError:
        return source

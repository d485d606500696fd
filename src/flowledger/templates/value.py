"""JSON values whose strings may be templates, such as a step's ``input``.

Compiled once: each templated string becomes a :class:`Template`, and each
container that holds one becomes a small render function. Constant subtrees
are returned as they are (shared, never copied or mutated), so rendering a
mostly-constant input costs only its templated parts. Object keys are always
literal text, never templates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flowledger.errors import TemplateError, format_path
from flowledger.templates.limits import Meter
from flowledger.templates.parsing import contains_template

if TYPE_CHECKING:
    from flowledger.templates.compiler import Template

Path = tuple[str | int, ...]
Renderer = Callable[[Mapping[str, Any], Meter], Any]


class TemplatedValue:
    """A compiled JSON value; immutable and safe to render from many threads."""

    __slots__ = ("_render", "_templates", "_value", "is_constant")
    _value: Any
    _render: Renderer | None
    _templates: tuple[tuple[Path, Template], ...]
    is_constant: bool

    def __init__(
        self, value: Any, render: Renderer | None, templates: tuple[tuple[Path, Template], ...]
    ) -> None:
        set_ = object.__setattr__  # instances are immutable after this
        set_(self, "_value", value)
        set_(self, "_render", render)
        set_(self, "_templates", templates)
        #: True when no string inside is a template: render returns the value itself.
        set_(self, "is_constant", render is None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TemplatedValue is immutable; cannot set {name!r}")

    @classmethod
    def build(cls, value: Any, compile_source: Callable[[str], Template]) -> TemplatedValue:
        found: list[tuple[Path, Template]] = []
        render = _build(value, (), compile_source, found)
        return cls(value, render, tuple(found))

    def templates(self) -> Iterator[tuple[Path, Template]]:
        """Each template with its path inside the value, in document order."""
        return iter(self._templates)

    def render(self, context: Mapping[str, Any]) -> Any:
        """A new structure with every template rendered; constant parts are shared.

        All its templates share one budget (a step's input as a whole is bounded, not
        only each field), and a failure names the field (``headers.auth: ...``)."""
        if self._render is None:
            return self._value
        limits = self._templates[0][1].limits
        return self._render(context, Meter.for_limits(limits))


def _build(
    value: Any, path: Path, compile_source: Callable[[str], Template], found: list[Any]
) -> Renderer | None:
    """A render function for ``value``, or None when it holds no template."""
    if isinstance(value, str):
        if not contains_template(value):
            return None
        try:
            template = compile_source(value)
        except TemplateError as exc:
            if not path:
                raise
            located = f"{format_path(path)}: {exc.message}"
            raise type(exc)(located, source=exc.source) from None
        found.append((path, template))
        return _template_renderer(template, path)
    if isinstance(value, Mapping):
        entries = [
            (key, item, _build(item, (*path, key), compile_source, found))
            for key, item in value.items()
        ]
        if all(render is None for _, _, render in entries):
            return None
        return _dict_renderer(entries)
    if isinstance(value, list | tuple):
        parts = [
            (item, _build(item, (*path, index), compile_source, found))
            for index, item in enumerate(value)
        ]
        if all(render is None for _, render in parts):
            return None
        return _list_renderer(parts, as_tuple=isinstance(value, tuple))
    return None


def _template_renderer(template: Template, path: Path) -> Renderer:
    if not path:
        return template.render

    def render_field(context: Mapping[str, Any], meter: Meter) -> Any:
        try:
            return template.render(context, meter)
        except TemplateError as exc:
            raise type(exc)(f"{format_path(path)}: {exc.message}", source=exc.source) from None

    return render_field


def _dict_renderer(entries: list[tuple[Any, Any, Renderer | None]]) -> Renderer:
    def render_dict(context: Mapping[str, Any], meter: Meter) -> dict[Any, Any]:
        return {
            key: item if render is None else render(context, meter) for key, item, render in entries
        }

    return render_dict


def _list_renderer(parts: list[tuple[Any, Renderer | None]], *, as_tuple: bool) -> Renderer:
    def render_list(context: Mapping[str, Any], meter: Meter) -> Any:
        items = [item if render is None else render(context, meter) for item, render in parts]
        return tuple(items) if as_tuple else items

    return render_list

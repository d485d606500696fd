"""The per-render Jinja context: the caller's data plus this render's budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from jinja2.runtime import Context

from flowledger.templates.limits import Meter, TemplateLimits

if TYPE_CHECKING:
    from jinja2 import Environment

_NO_BLOCKS: dict[str, Any] = {}


class RenderContext(Context):
    """A Jinja context that also carries the limits and the render's :class:`Meter`.

    ``parent`` is the caller's mapping itself, not a copy: templates cannot
    write to it, and copying would cost more than the whole render.
    """

    def __init__(
        self,
        environment: Environment,
        parent: Mapping[str, Any],
        limits: TemplateLimits,
        meter: Meter | None = None,
    ) -> None:
        super().__init__(environment, cast(dict[str, Any], parent), None, _NO_BLOCKS)
        self.limits = limits
        #: Shared by every template of one rendered value (a step's whole input).
        self.meter = meter if meter is not None else Meter.for_limits(limits)


def render_context(context: Context) -> RenderContext:
    """The :class:`RenderContext` a filter or sandbox hook was handed."""
    return cast(RenderContext, context)

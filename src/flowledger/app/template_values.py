"""The templates of a step attempt's input beside what each rendered to, as its
execution's page lists them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NotRequired

from typing_extensions import TypedDict

from flowledger.definition.compiled import CompiledStep
from flowledger.steps.base import StepKind

#: Children whose rendered inputs a sub-workflow attempt's template rows show.
SHOWN_CHILD_INPUTS = 5


class TemplateValue(TypedDict):
    path: str
    template: str
    value: Any
    #: Rendered once per child (a sub-workflow's ``input`` with ``items``): ``value`` is
    #: the list of the first SHOWN_CHILD_INPUTS children's values, of this many.
    perChild: NotRequired[int]


def step_templates(step: CompiledStep, rendered: Any) -> list[TemplateValue]:
    """Every template of the step's input with what it rendered to. A sub-workflow's
    ``input`` is kept as written and rendered per child into ``inputs`` (it showed the
    template as its own value): its rows show the child's value, or with ``items`` the
    first SHOWN_CHILD_INPUTS children's."""
    source = step.spec.input
    inputs = rendered.get("inputs") if isinstance(rendered, dict) else None
    if (
        step.step_type.kind is not StepKind.SUB_WORKFLOW
        or not isinstance(source, dict)
        or not isinstance(rendered, dict)
        or not isinstance(inputs, list)
    ):
        return list(_templates(source, rendered, "input"))
    rows: list[TemplateValue] = []
    for name, inner in source.items():
        path = f"input.{name}"
        if name != "input":
            rows += _templates(inner, rendered.get(name, _MISSING), path)
        elif rendered.get("items") is None:  # one child
            rows += _templates(inner, inputs[0] if inputs else _MISSING, path)
        else:
            each = [list(_templates(inner, one, path)) for one in inputs[:SHOWN_CHILD_INPUTS]]
            for index, row in enumerate(_templates(inner, _MISSING, path)):
                row["value"] = [values[index]["value"] for values in each]
                row["perChild"] = len(inputs)
                rows.append(row)
    return rows


_MISSING = object()


def _templates(source: Any, rendered: Any, path: str) -> Iterator[TemplateValue]:
    """Every template string in a step's definition input, with what it rendered to."""
    if isinstance(source, str):
        if "{{" in source:
            value = None if rendered is _MISSING else rendered
            yield {"path": path, "template": source, "value": value}
    elif isinstance(source, dict):
        for key, inner in source.items():
            below = rendered.get(key, _MISSING) if isinstance(rendered, dict) else _MISSING
            yield from _templates(inner, below, f"{path}.{key}")
    elif isinstance(source, list):
        for index, inner in enumerate(source):
            ok = isinstance(rendered, list) and index < len(rendered)
            yield from _templates(inner, rendered[index] if ok else _MISSING, f"{path}[{index}]")

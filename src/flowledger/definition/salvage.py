"""Keep checking a definition that failed its field checks, so every problem shows at once.

When pydantic refuses part of a document, the parts that did parse still deserve
graph, type and reference checks. A step whose broken fields are ones nothing else
rests on (``retry``, ``timeout``, ``output_schema``, a body step) is kept without them,
and its input and templates are still checked: a bad ``retry.initial_delay`` does not
hide a bad ``input.method``. A step whose type, input or branches are broken is kept as a
stand-in with its id and edges (so steps that name it do not get spurious "unknown
step" errors); its input, templates and output type are not checked. An item with no
id, or no mapping at all, is a stand-in with neither: every step keeps its place
in the list, from which its problems are located.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from pydantic import ValidationError

from flowledger.definition.models import StepSpec, TriggerSpec, WorkflowSpec


def salvage(
    data: Mapping[str, Any], errors: list[tuple[Any, ...]], has_body: Callable[[str], bool]
) -> tuple[WorkflowSpec, set[str]]:
    """A best-effort spec from a document pydantic refused, and the ids of stand-in steps.

    ``has_body`` tells which step types carry a body graph (asked of the step's kind).
    """
    broken_top = {loc[0] for loc in errors if loc and loc[0] != "steps"}
    stand_ins: set[str] = set()
    steps = _steps(data.get("steps"), stand_ins, has_body, itertools.count(1))
    fields: dict[str, Any] = {
        name: data[name]
        for name in WorkflowSpec.model_fields
        if name in data and name not in broken_top and name != "steps"
    }
    if not isinstance(fields.get("name"), str):
        fields["name"] = "invalid"
    for name in ("variables", "context"):
        if not isinstance(fields.get(name), dict):
            fields[name] = {}
    if not isinstance(fields.get("input_schema"), dict):
        fields["input_schema"] = None
    # Triggers that parsed are checked on (a cron's error was hidden by a step's unknown
    # field, and by another trigger's unknown type).
    fields["triggers"] = _triggers(data.get("triggers"))
    return WorkflowSpec.model_construct(**fields, steps=steps), stand_ins


def _triggers(raw: Any) -> list[TriggerSpec]:
    """The triggers as parsed, each that does not in its place as a trigger of no type
    (its problem is said; definition.triggers.compile_triggers skips it), so the others
    keep their places, from which their problems are located."""
    if not isinstance(raw, list):
        return []
    found = []
    for item in raw:
        try:
            found.append(TriggerSpec.model_validate(item))
        except ValidationError:
            found.append(TriggerSpec.model_construct(type=cast(Any, None)))  # of no kind
    return found


def _steps(
    raw: Any,
    stand_ins: set[str],
    has_body: Callable[[str], bool],
    holes: Iterator[int],
) -> list[StepSpec]:
    """The steps that parse, and a stand-in in the place of each that does not: every
    step keeps its position, from which the checks name its line (a step dropped here
    moved every later step's problems onto the line of the one before it)."""
    if not isinstance(raw, list):
        return []
    out: list[StepSpec] = []
    for item in raw:
        if not isinstance(item, Mapping):
            out.append(_stand_in({}, _hole(holes), stand_ins, has_body, holes))
            continue
        try:
            out.append(StepSpec.model_validate(item))
            continue
        except ValidationError as exc:
            broken = {error["loc"][0] for error in exc.errors() if error["loc"]}
        kept = _without(item, broken, stand_ins, has_body, holes)
        if kept is not None:
            out.append(kept)
            continue
        step_id = item.get("id")
        if not isinstance(step_id, str) or not step_id:
            # Without an id nothing can refer to it, and its edges are not checked
            # (each problem would name a step by an id that is not in the file). An id
            # that breaks the rules is kept: the file's references to it are not unknown.
            shape = {name: item[name] for name in ("type", "steps") if name in item}
            out.append(_stand_in(shape, _hole(holes), stand_ins, has_body, holes))
            continue
        out.append(_stand_in(item, step_id, stand_ins, has_body, holes))
    return out


def _hole(holes: Iterator[int]) -> str:
    """An id for a step whose own is unusable: no step id can be it, and each is unique
    in the workflow."""
    return f"#{next(holes)}"


def _stand_in(
    item: Mapping[str, Any],
    step_id: str,
    stand_ins: set[str],
    has_body: Callable[[str], bool],
    holes: Iterator[int],
) -> StepSpec:
    """A step that is not checked, only placed: its id and edges."""
    step_type = item.get("type")
    fields: dict[str, Any] = {
        "id": step_id,
        "type": step_type if isinstance(step_type, str) else "sys.no_action",
        "input": {},
    }
    for name, attr in (("after", "after"), ("then", "then"), ("else", "else_")):
        value = item.get(name)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            fields[attr] = value
    if isinstance(step_type, str) and has_body(step_type):
        fields["steps"] = _steps(item.get("steps"), stand_ins, has_body, holes)
    stand_ins.add(step_id)
    return StepSpec.model_construct(**fields)


#: Fields whose problem leaves nothing to check of the step: the step becomes a stand-in.
_ESSENTIAL = frozenset({"id", "type", "input", "then", "else"})


def _without(
    item: Mapping[str, Any],
    broken: set[Any],
    stand_ins: set[str],
    has_body: Callable[[str], bool],
    holes: Iterator[int],
) -> StepSpec | None:
    """The step ``item`` without its ``broken`` fields, when it is still a step that can
    be checked (None: one of ``_ESSENTIAL`` is among them, or it still does not parse)."""
    if broken & _ESSENTIAL:
        return None
    rest = {name: value for name, value in item.items() if name not in broken}
    try:
        spec = StepSpec.model_validate(rest)
    except ValidationError:
        return None
    if "steps" in broken and has_body(spec.type):  # its body's good steps are still checked
        steps = _steps(item.get("steps"), stand_ins, has_body, holes)
        spec = spec.model_copy(update={"steps": steps})
    return spec

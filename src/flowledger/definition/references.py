"""Checking every template reference before a run: names, step order, loop scope, field paths.

Whether a read's type allows what an expression does with it is typed_reads' job.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowledger.definition.constants import rendered_constants
from flowledger.definition.graph import Reachability, StepPlace
from flowledger.definition.output_types import OutputTypes
from flowledger.definition.schemas import (
    EXECUTION_FIELDS,
    FRAME_FIELDS,
    LOOP_FIELDS,
    STEP_ENVELOPE_FIELDS,
    walk,
)
from flowledger.definition.strictness import checking_new
from flowledger.errors import did_you_mean
from flowledger.steps.base import StepKind
from flowledger.steps.registry import StepRegistry
from flowledger.templates import Reference, Template

TEMPLATE_NAMES = (
    "trigger",
    "input",
    "steps",
    "variables",
    "loop",
    "context",
    "execution",
    "secrets",
    "__context__",
    "__steps__",
)


@dataclass(frozen=True)
class ReadContext:
    """What a definition's reads are checked against, given once to every checker of
    them (TypedReads, ReferenceChecker)."""

    places: Mapping[str, StepPlace]
    registry: StepRegistry
    #: The variable names declared under ``variables:`` or set by a step.
    variables: set[str]
    input_schema: Mapping[str, Any] | None
    #: Renders a template that reads nothing (definition.constants), for the rules that
    #: read an input field's value: ``concurrency: "{{ 4 }}"`` is 4.
    compile_source: Callable[[str], Template] | None = None


class ReferenceChecker:
    def __init__(self, context: ReadContext, outputs: OutputTypes) -> None:
        # Unpacked once: the checks read these per reference.
        self._places = context.places
        self._compile_source = context.compile_source
        self._registry = context.registry
        self._variables = context.variables
        self._input_schema = context.input_schema
        self._outputs = outputs
        #: One reachability index per graph, keyed by its (shared) predecessor map.
        self._reach: dict[int, Reachability] = {}
        #: Referrers that stand for the end of an iteration of a loop: referrer → loop id.
        self._ends: dict[str, str] = {}
        #: Referrers that stand for a step's input rendered once per item (the child
        #: input of a sys.sub_workflow with items): referrer → step id.
        self._per_item: dict[str, str] = {}

    def iteration_end(self, loop_id: str) -> str:
        """The referrer of what a loop's driver renders when an iteration of it ends
        (``until``): every step of the body has ended then, so each is visible (this
        iteration's output), as is all the loop step sees, and ``loop.<loop id>``.
        Not a step id (ids have no '/'), so it never names a step."""
        referrer = f"{loop_id}/until"
        self._ends[referrer] = loop_id
        return referrer

    def per_item(self, step_id: str) -> str:
        """The referrer of the part of a step's input rendered once per item, with
        ``loop.<step id>`` set to that item's frame (the child input of a
        ``sys.sub_workflow`` with ``items``): it reads as the step does, plus that frame.
        Not a step id (ids have no '/'), so it never names a step."""
        referrer = f"{step_id}/per_item"
        self._per_item[referrer] = step_id
        return referrer

    def _step_of(self, referrer: str | None) -> str | None:
        """The step ``referrer`` reads as (a per-item part reads as its step)."""
        return self._per_item.get(referrer, referrer) if referrer is not None else None

    def _scope_of(self, referrer: str | None) -> tuple[str, ...]:
        """The loops whose frames ``referrer`` sees, outermost first."""
        referrer = self._step_of(referrer)
        if referrer is None:
            return ()
        loop = self._ends.get(referrer)
        if loop is not None:
            return (*self._places[loop].scope, loop)
        return self._places[referrer].scope

    # -- visibility ---------------------------------------------------------------------------

    def is_visible(self, target: str, referrer: str | None) -> bool:
        """Whether ``target``'s output is recorded before ``referrer`` runs (None: the output)."""
        referrer = self._step_of(referrer)
        if referrer is None:
            return not self._places[target].scope
        loop = self._ends.get(referrer)
        if loop is not None:  # the end of an iteration: the body has run, and before it
            body = self._scope_of(referrer)
            return self._places[target].scope == body or self.is_visible(target, loop)
        place = self._places[referrer]
        if self._precedes(target, referrer, place):
            return True
        return any(self._precedes(target, loop, self._places[loop]) for loop in place.scope)

    def _precedes(self, target: str, step_id: str, place: StepPlace) -> bool:
        """Whether ``target`` is an ancestor of ``step_id`` in ``step_id``'s own graph."""
        if self._places[target].predecessors is not place.predecessors:
            return False  # another graph: never an ancestor
        reach = self._reach.get(id(place.predecessors))
        if reach is None:
            reach = self._reach[id(place.predecessors)] = Reachability(place.predecessors)
        return reach.precedes(target, step_id)

    # -- checking -----------------------------------------------------------------------------

    def check(
        self, template: Template, referrer: str | None, report: Callable[[str], None]
    ) -> None:
        for ref in template.references:
            message = self._problem(ref, referrer)
            if message:
                report(message)

    def _problem(self, ref: Reference, referrer: str | None) -> str | None:
        root, path = ref.root, ref.path
        if root not in TEMPLATE_NAMES:
            close = difflib.get_close_matches(root, TEMPLATE_NAMES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return f"unknown name '{root}' in a template (names: {', '.join(TEMPLATE_NAMES)}){hint}"
        if not path:
            return None
        if root in ("steps", "__steps__"):
            return self._step_problem(root, path, referrer)
        if root == "loop":
            return self.loop_problem(path, referrer)
        if root == "variables":
            return self._name_problem("variables", path[0], self._variables, "variables:")
        if root == "execution":
            return self._name_problem("execution", path[0], set(EXECUTION_FIELDS), None)
        if root == "input":
            return self._input_problem(path)
        return None

    def _step_problem(
        self, root: str, path: tuple[str | int, ...], referrer: str | None
    ) -> str | None:
        target = path[0]
        if not isinstance(target, str) or target not in self._places:
            close = difflib.get_close_matches(str(target), list(self._places), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return f"{root}.{target} names no step of this workflow{hint}"
        order = self.order_problem(target, referrer)
        if order:
            return f"{root}.{target}: {order}"
        if len(path) < 2:
            return None
        field = path[1]
        envelope = (
            ("outputData", *STEP_ENVELOPE_FIELDS) if root == "__steps__" else STEP_ENVELOPE_FIELDS
        )
        if field not in envelope:
            return f"{root}.{target} has no field '{field}' (its fields: {', '.join(envelope)})"
        if field not in ("output", "outputData"):
            return None
        result = walk(self._outputs.output_schema(target), path[2:], f"{root}.{target}.{field}")
        return None if result.ok else result.problem

    def order_problem(self, target: str, referrer: str | None) -> str | None:
        if target == self._step_of(referrer):
            return "a step cannot read its own output"
        if self.is_visible(target, referrer):
            return None
        place = self._places[target]
        ref_scope = self._scope_of(referrer)
        if referrer is not None and self._ends.get(referrer) == target:
            return (
                f"'{target}' is the loop this is evaluated in; it has no output until it "
                f"ends (read its body's steps, this iteration's outputs, or "
                f"loop.{target}.index and loop.{target}.previous)"
            )
        if target in ref_scope:
            return (
                f"'{target}' is a loop this step runs inside; it has no output until every "
                f"iteration is done (read loop.{target}.item or loop.{target}.index instead)"
            )
        outside = [loop for loop in place.scope if loop not in ref_scope]
        if outside:
            # Through every loop between, outermost first: each iteration's result holds
            # the inner loop's output (results[i].inner.results[j].step).
            path = f"steps.{outside[0]}.output"
            for index, inner in zip("ijklmn", [*outside[1:], target], strict=False):
                path += f".results[{index}].{inner}"
            return (
                f"'{target}' runs inside loop '{outside[0]}', so it has an output per iteration; "
                f"from outside the loop read {path}"
            )
        if referrer is None:
            return None
        return (
            f"'{target}' does not run before this step; make it a predecessor "
            "(list it in 'after', directly or through a step that runs after it)"
        )

    def loop_problem(self, path: tuple[str | int, ...], referrer: str | None) -> str | None:
        scope = self._scope_of(referrer)
        name = path[0]
        step = self._step_of(referrer)
        # A sys.sub_workflow with items renders its child input once per item, as a loop:
        # there, and only there, loop.<its id> is set. A stored version is read as it was
        # accepted: anywhere in the step's input and 'when' (where the run fails).
        own_frame = step is not None and name == step and self._kind(step).own_loop_frame
        if own_frame and referrer not in self._per_item and checking_new():
            given = self._places[str(name)].spec.input
            if not isinstance(given, Mapping) or given.get("items") is None:
                return (
                    f"loop.{name} does not exist: '{name}' has no 'items', so it starts one "
                    f"child, its input rendered once (with 'items', loop.{name}.item and "
                    f"loop.{name}.index are set in 'input', once per item)"
                )
            return (
                f"loop.{name} is set only in the child input ('input') of '{name}', once "
                "per item; this is rendered once for the whole step"
            )
        if name not in scope and not own_frame:
            inside = ", ".join(scope) if scope else "none"
            return (
                f"loop.{name}: this step is not inside a loop named '{name}' "
                f"(enclosing loops: {inside})"
            )
        if len(path) < 2:
            return None
        loop_id = str(name)
        body = self._kind(loop_id).has_body  # a sys.loop's frame, not a child input's
        fields = LOOP_FIELDS if body else FRAME_FIELDS
        if path[1] not in fields:
            return f"loop.{name} has no field '{path[1]}' (its fields: {', '.join(fields)})"
        if body and checking_new():
            problem = self._frame_problem(loop_id, str(path[1]))
            if problem:
                return problem
        if path[1] == "item" and len(path) > 2:
            result = walk(self._outputs.item_schema(loop_id), path[2:], f"loop.{name}.item")
            return None if result.ok else result.problem
        if path[1] == "previous" and len(path) > 2:
            return self._previous_problem(loop_id, path[2:])
        return None

    def _frame_problem(self, loop_id: str, field: str) -> str | None:
        """A field of a sys.loop's frame that is always null there: ``item`` and
        ``items`` of a loop with ``until`` (it has no items), ``previous`` of a loop
        whose iterations run side by side (none of them comes before another)."""
        given = self._places[loop_id].spec.input
        given = given if isinstance(given, Mapping) else {}
        if field in ("item", "items") and given.get(self._iteration_end_field(loop_id)):
            return (
                f"loop.{loop_id}.{field} is always null: '{loop_id}' runs until a "
                f"condition holds, over no items; read loop.{loop_id}.index, or "
                f"loop.{loop_id}.previous for the iteration before's outputs"
            )
        concurrency = given.get("concurrency", 1)
        if self._compile_source is not None:
            concurrency = rendered_constants(concurrency, self._compile_source)
        number = isinstance(concurrency, int) and not isinstance(concurrency, bool)
        if field == "previous" and number and concurrency > 1:
            return (
                f"loop.{loop_id}.previous is always null: '{loop_id}' runs {concurrency} "
                "iterations at a time, so none comes before another; with concurrency 1 "
                "it holds the iteration before's outputs"
            )
        return None

    def _previous_problem(self, loop_id: str, rest: tuple[str | int, ...]) -> str | None:
        """``loop.<id>.previous.<body step>...``: a step of the loop's own body, and a
        field its output has (``previous`` maps each body step id to its output, as an
        item of the loop's ``results`` does)."""
        target = rest[0]
        body = [s.id for s in self._places[loop_id].spec.steps or ()]
        if target not in body:
            hint = did_you_mean(str(target), body)
            return (
                f"loop.{loop_id}.previous.{target}: '{target}' is not a step of the body of "
                f"loop '{loop_id}' (its steps: {', '.join(body) or 'none'}){hint}"
            )
        where = f"loop.{loop_id}.previous.{target}"
        result = walk(self._outputs.output_schema(str(target)), rest[1:], where)
        return None if result.ok else result.problem

    def _iteration_end_field(self, step_id: str) -> str | None:
        step_type = self._registry.get(self._places[step_id].spec.type)
        return step_type.iteration_end_field if step_type is not None else None

    def _name_problem(
        self, root: str, name: str | int, known: set[str], where: str | None
    ) -> str | None:
        if name in known:
            return None
        close = difflib.get_close_matches(str(name), sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        declared = ", ".join(sorted(known)) or "none"
        origin = f" (declare it under '{where}' or set it with sys.set_variable)" if where else ""
        return f"{root}.{name} does not exist{origin}; known: {declared}{hint}"

    def _input_problem(self, path: tuple[str | int, ...]) -> str | None:
        schema = self._input_schema
        props = schema.get("properties") if schema else None
        name = path[0]
        if not isinstance(props, Mapping):
            return None
        if name in props:
            if len(path) == 1 or not checking_new():  # deeper: a rule added later
                return None
            result = walk(schema, path, "input")  # input.n.x where n is an integer
            return None if result.ok else result.problem
        close = difflib.get_close_matches(str(name), list(props), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return (
            f"input.{name} is not declared in input_schema "
            f"(declared: {', '.join(sorted(props)) or 'none'}){hint}"
        )

    def _kind(self, step_id: str) -> StepKind:
        step_type = self._registry.get(self._places[step_id].spec.type)
        return step_type.kind if step_type is not None else StepKind.TASK

"""Checking every template reference before a run: names, step order, loop scope, field types."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowledger.definition.graph import Reachability
from flowledger.definition.models import StepSpec
from flowledger.definition.schemas import (
    EXECUTION_FIELDS,
    FRAME_FIELDS,
    LOOP_FIELDS,
    STEP_ENVELOPE_FIELDS,
    Schema,
    Takes,
    describe,
    holds_decimal,
    is_decimal_text,
    is_number,
    json_kinds,
    schema_of_literal,
    walk,
)
from flowledger.definition.strictness import checking_new
from flowledger.errors import did_you_mean, format_path
from flowledger.steps.base import StepKind
from flowledger.steps.registry import StepRegistry
from flowledger.templates import Reference, Template
from flowledger.templates.numeric_uses import MATCHING, NUMBER_TESTS, NumericUse, Read

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
_MATCHING_USES = frozenset(MATCHING.values())
#: The uses that fail (or go wrong) on text, a list or an object.
_TYPE_USES = frozenset(("arithmetic", "comparison", "round", "abs", "sum", *NUMBER_TESTS))


@dataclass(frozen=True)
class StepPlace:
    """Where a step sits: its spec, its enclosing loops and its graph's predecessor map."""

    spec: StepSpec
    scope: tuple[str, ...]
    predecessors: Mapping[str, list[str]]


class ReferenceChecker:
    def __init__(
        self,
        places: Mapping[str, StepPlace],
        registry: StepRegistry,
        variables: set[str],
        input_schema: Mapping[str, Any] | None,
        unchecked: set[str] | None = None,
    ) -> None:
        #: Steps whose output type is unknown (their definition was refused): anything goes.
        self._unchecked = unchecked or set()
        self._places = places
        self._registry = registry
        self._variables = variables
        self._input_schema = input_schema
        #: One reachability index per graph, keyed by its (shared) predecessor map.
        self._reach: dict[int, Reachability] = {}
        self._schemas: dict[str, Schema | None] = {}
        #: Per step output and loop item, whether a Decimal is anywhere in it.
        self._decimals: dict[tuple[str, str], bool] = {}
        self._item_schemas: dict[tuple[str, str], Schema | None] = {}
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
        if checking_new() and template.numeric_uses:
            said: set[str] = set()  # a read used alike twice (a * 2 + a * 3) is said once
            for use in template.numeric_uses:
                message = self._numeric_problem(use, referrer) or self._type_problem(use, referrer)
                if message and message not in said:
                    said.add(message)
                    report(message)

    def _numeric_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        """A Decimal output is stored as text (to keep its digits): used as a number it
        goes wrong. ``price * 2`` repeats the text ("9.999.99"), ``a > b`` compares it as
        text, ``price == 9.99`` and ``price in [9.99]`` are false, ``[price, '10.5'] |
        max`` orders text, ``price | round`` fails at run time. A read of unknown type
        passes."""
        schema = self._read_schema(use.read, referrer, only_decimal=True)
        if schema is None or not is_decimal_text(schema):
            return None
        if use.other is None or use.use not in _MATCHING_USES:
            return _decimal_use_message(use, None)
        other = self._read_schema(use.other, referrer, only_decimal=False)
        if other is None or not is_number(other):
            return None  # Decimal with Decimal, or with text: both are text
        return _decimal_use_message(use, _shown(use.other))

    def _type_problem(self, use: NumericUse, referrer: str | None) -> str | None:
        """A read whose type is surely text, a list or an object, used where that fails
        or goes wrong at run time: ``name - 1`` fails, ``name * 2`` repeats the text,
        ``name < 5`` and ``items | round`` fail. Text with text (``a + b``, ``a < b``)
        passes, and so does a read of unknown type, a union that allows a number, or
        one that may not be the value used (``(a if c else 0) - 1``)."""
        if use.use not in _TYPE_USES or not use.read.sure:
            return None
        schema = self._read_schema(use.read, referrer, only_decimal=False)
        if schema is None or is_decimal_text(schema):  # a Decimal: the rule above
            return None
        kinds = json_kinds(schema)
        present = (kinds or frozenset()) - {"null"}
        if len(present) != 1:
            return None
        kind = next(iter(present))
        if kind not in ("string", "array", "object"):
            return None  # a number, or a boolean (True - 1 is 0)
        wrong = self._what_goes_wrong(use, kind, referrer)
        if wrong is None:
            return None
        return _type_use_message(use.read, describe(schema), kind, wrong)

    def _what_goes_wrong(self, use: NumericUse, kind: str, referrer: str | None) -> str | None:
        """What ``use`` does to a value of ``kind`` (text, a list, an object), or None
        when it may be fine."""
        if use.use == "arithmetic":
            op = use.operator
            shown = f"'{op[-1]}' before it" if op.startswith("unary") else f"'{op}'"
            if kind == "object" or op not in ("+", "*"):
                return f"{shown} would fail on it at run time"
            if not self._surely_number(use, referrer):
                return None  # 'a' + 'b' joins text, [1] + xs lists, [0] * 3 repeats
            if op == "+":
                example = "'a' + 1" if kind == "string" else "[1] + 1"
                return f"'+' with a number would fail at run time ({example} is an error)"
            if kind == "string":
                return "'*' with a number would repeat the text ('ab' * 2 is 'abab')"
            return None
        if use.use == "comparison":
            if not self._surely_number(use, referrer):
                return None  # text with text orders fine
            return "ordering it against a number ('<', '>=') would fail at run time"
        if use.use == "sum" and kind == "array" and use.read.item is None:
            return None  # the list summed, or one in a list: not known which
        if use.use in NUMBER_TESTS:
            return f"'is {use.use}' would fail on it at run time"
        return f"'| {use.use}' would fail on it at run time"

    def _surely_number(self, use: NumericUse, referrer: str | None) -> bool:
        """Whether the other side of ``use`` is surely a number."""
        if use.number:
            return True
        if use.other is None:
            return False
        other = self._read_schema(use.other, referrer, only_decimal=False)
        return other is not None and is_number(other)

    def whole_read_problem(
        self, ref: Reference, field: str, takes: Takes, referrer: str | None
    ) -> str | None:
        """A field given one bare read (``items: "{{ input.n }}"``) gets the read's value
        as it is: refused when the read's type is surely one the field's validator
        refuses (an integer for a list), which would fail the step at run time."""
        schema = self._read_schema(Read(ref), referrer, only_decimal=False)
        kinds = json_kinds(schema)
        if schema is None or kinds is None or not kinds.isdisjoint(takes.kinds):
            return None
        shown = format_path((ref.root, *ref.path))
        read = "{{ " + shown + " }}"
        fix = _field_fix(shown, kinds - {"null"}, takes)
        return (
            f"{read} is {describe(schema)}, but {field} takes {takes.words}, so the step "
            f"would fail at run time; {fix}"
        )

    def _read_schema(self, read: Read, referrer: str | None, only_decimal: bool) -> Schema | None:
        """The type of what ``read`` reads (None: unknown, or refused elsewhere). With
        ``only_decimal``, None too unless the output it reads holds a Decimal, so a
        definition without one pays a dictionary look-up per use."""
        ref, path = read.reference, read.segments
        if ref.root == "input" and path:
            # input_schema, which the input was checked against when the execution started;
            # a property of ``format: decimal`` is a Decimal as text, as an output's is
            if not self._input_schema or (only_decimal and not self._input_decimal()):
                return None
            found = walk(self._input_schema, path, "")
            return found.schema if found.ok else None
        if len(path) < 2:
            return None
        if ref.root in ("steps", "__steps__"):
            target = path[0]
            if not isinstance(target, str) or target not in self._places:
                return None
            key, root = ("steps", target), self.output_schema(target)
        elif ref.root == "loop" and path[1] == "item":
            if self._loop_problem(path[:2], referrer):
                return None
            key = ("loop", str(path[0]))
            if key not in self._item_schemas:
                self._item_schemas[key] = self._item_schema(key[1])
            root = self._item_schemas[key]
        elif ref.root == "loop" and path[1] == "previous" and len(path) > 2:
            if self._loop_problem(path[:3], referrer):
                return None
            # loop.<id>.previous.<body step>.<field>: read as steps.<body step>.output
            key = ("steps", str(path[2]))
            root = self.output_schema(key[1])
            path = (path[2], "output", *path[3:])
        else:
            return None
        if only_decimal:
            holds = self._decimals.get(key)
            if holds is None:
                holds = self._decimals[key] = holds_decimal(root)
            if not holds:
                return None
        if ref.root != "loop":  # reported elsewhere unless the output is readable here
            fields = ("output", "outputData") if ref.root == "__steps__" else ("output",)
            if path[1] not in fields or self._order_problem(key[1], referrer):
                return None
        result = walk(root, path[2:], "")
        return result.schema if result.ok else None

    def _input_decimal(self) -> bool:
        """Whether ``input_schema`` marks a Decimal anywhere (asked once)."""
        holds = self._decimals.get(("input", ""))
        if holds is None:
            holds = self._decimals[("input", "")] = holds_decimal(self._input_schema)
        return holds

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
            return self._loop_problem(path, referrer)
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
        order = self._order_problem(target, referrer)
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
        result = walk(self.output_schema(target), path[2:], f"{root}.{target}.{field}")
        return None if result.ok else result.problem

    def _order_problem(self, target: str, referrer: str | None) -> str | None:
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

    def _loop_problem(self, path: tuple[str | int, ...], referrer: str | None) -> str | None:
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
            result = walk(self._item_schema(loop_id), path[2:], f"loop.{name}.item")
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
        result = walk(self.output_schema(str(target)), rest[1:], where)
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

    # -- output types -------------------------------------------------------------------------

    def output_schema(self, step_id: str) -> Schema | None:
        if step_id not in self._schemas:
            self._schemas[step_id] = None  # guards against self-reference while computing
            self._schemas[step_id] = self._compute_schema(step_id)
        return self._schemas[step_id]

    def _compute_schema(self, step_id: str) -> Schema | None:
        if step_id in self._unchecked:
            return None
        spec = self._places[step_id].spec
        if spec.output_schema is not None:
            return _inline_refs(spec.output_schema)
        step_type = self._registry.get(spec.type)
        if step_type is None:
            return None
        if step_type.output_is_input is not None:
            field = step_type.output_is_input
            value = spec.input.get(field) if isinstance(spec.input, Mapping) else None
            return schema_of_literal(value)
        if step_type.kind.has_body:
            body = {s.id: self.output_schema(s.id) or {} for s in spec.steps or ()}
            item = {"type": "object", "properties": body}
            return {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "results": {"type": "array", "items": item},
                },
            }
        if step_type.output_schema_in_input is not None:
            # The output is the submitted data, validated against the literal schema.
            field = step_type.output_schema_in_input
            given = spec.input.get(field) if isinstance(spec.input, Mapping) else None
            if isinstance(given, Mapping) and not _has_templates(given):
                return _inline_refs(given)
            return None
        schema = step_type.output_json_schema()
        if schema is None:
            return None
        stored = _inline_refs(schema)
        if not checking_new() and step_type.output_model is not None:
            # Before outputs were stored by alias, references were checked against the
            # validation-mode schema: a stored version that passed then still compiles.
            earlier = _inline_refs(step_type.output_model.model_json_schema())
            if earlier != stored:
                return {"anyOf": [stored, earlier]}
        return stored

    def _item_schema(self, loop_id: str) -> Schema | None:
        spec = self._places[loop_id].spec
        items = spec.input.get("items") if isinstance(spec.input, Mapping) else None
        if not isinstance(items, str):
            return None
        stripped = items.strip()
        if not (stripped.startswith("{{") and stripped.endswith("}}")):
            return None
        expr = stripped[2:-2].strip()
        parts = expr.split(".")
        if len(parts) < 3 or parts[0] != "steps" or parts[2] != "output":
            return None
        if not all(p.isidentifier() for p in parts) or parts[1] not in self._places:
            return None
        result = walk(self.output_schema(parts[1]), tuple(parts[3:]), "")
        if not result.ok or result.schema is None:
            return None
        array = result.schema
        items_schema = array.get("items") if array.get("type") == "array" else None
        return items_schema if isinstance(items_schema, Mapping) else None


def _has_templates(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(_has_templates(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_templates(v) for v in value)
    return False


def _inline_refs(
    schema: Mapping[str, Any], _root: Mapping[str, Any] | None = None, _depth: int = 0
) -> Schema:
    """Replace local ``$ref``s by their targets so sub-schemas stand on their own."""
    root = _root if _root is not None else schema
    if _depth > 20:  # a recursive model: stop resolving, anything goes below here
        return {}

    def resolve(node: Any) -> Any:
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                target: Any = root
                for part in ref[2:].split("/"):
                    target = target.get(part) if isinstance(target, Mapping) else None
                return _inline_refs(target, root, _depth + 1) if isinstance(target, Mapping) else {}
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved = resolve(schema)
    return resolved if isinstance(resolved, Mapping) else {}


def _shown(read: Read) -> str:
    shown = format_path((read.reference.root, *read.reference.path))
    if read.item is None:
        return shown
    if not read.item:
        return f"each item of {shown}"
    return f"the {'.'.join(map(str, read.item))} of each item of {shown}"


def _decimal_use_message(use: NumericUse, other: str | None) -> str:
    """What goes wrong where a Decimal (stored as text) is used as a number, and the fix."""
    read = use.read
    shown = format_path((read.reference.root, *read.reference.path))
    what = use.use
    if what in ("arithmetic", "comparison"):
        wrong = "arithmetic or a comparison would work on the text ('9.99' * 2 is '9.999.99')"
    elif what in MATCHING.values():
        against = f"with {other}, a number" if other else "with a number"
        wrong = (
            f"'{what}' compares text {against}, and text never equals a number "
            "('9.99' == 9.99 is false)"
        )
    elif what in ("max", "min", "sort"):
        wrong = f"'| {what}' would order it as text ('10.5' before '9.99')"
    elif what in NUMBER_TESTS:
        wrong = f"'is {what}' would fail on the text"
    else:  # abs, round, sum
        wrong = f"'| {what}' would fail on the text"
    if read.item is None:
        fix = f"convert it first, as ({shown} | float)"
    else:
        mapped = f" | map(attribute='{'.'.join(map(str, read.item))}')" if read.item else ""
        fix = f"convert them first, as ({shown}{mapped} | map('float') | list)"
    if what in MATCHING.values() and other is None:
        fix += ", or compare it with text ('9.99')"
    stored = "is a Decimal, which is stored as text to keep its digits"
    return f"{_shown(read)} {stored}, so {wrong}; {fix}"


def _type_use_message(read: Read, described: str, kind: str, wrong: str) -> str:
    """A read of text, a list or an object used as a number: what goes wrong, and the fix."""
    shown = format_path((read.reference.root, *read.reference.path))
    if kind == "string" and read.item is None:
        fix = f"convert it first, as ({shown} | int) or ({shown} | float)"
    elif kind == "string":
        mapped = f" | map(attribute='{'.'.join(map(str, read.item))}')" if read.item else ""
        fix = f"convert them first, as ({shown}{mapped} | map('float') | list)"
    elif kind == "array":
        fix = "use a number from it: its count (| length), its total (| sum), or an item"
    else:
        fix = "use a number inside it: one of its fields"
    return f"{_shown(read)} is {described}, so {wrong}; {fix}"


def _field_fix(shown: str, kinds: frozenset[str], takes: Takes) -> str:
    """How to give a field what it takes from a read of ``kinds`` (null left out)."""
    read = "{{ " + shown + " }}"
    if "array" in takes.kinds:
        if kinds == {"number"}:
            return f"for a count, write {{{{ range({shown}) | list }}}}"
        return f"for a list of this one value, write {{{{ [{shown}] }}}}"
    if takes.words == "a number" and kinds <= {"array", "object"}:
        return f"for its count, write {{{{ {shown} | length }}}}, or read a number inside it"
    if takes.words == "a number" and kinds == {"boolean"}:
        return f"for 1 or 0, write {{{{ {shown} | int }}}}"
    if takes.kinds == {"string"} or takes.kinds == {"string", "null"}:
        to_text = "string" if kinds == {"number"} else "tojson"  # "3"; "true", '{"a": 1}'
        return f'for its text, write {{{{ {shown} | {to_text} }}}}, or put it in text ("n={read}")'
    if "object" in takes.kinds:
        return "read an object here (a mapping of fields)"
    return f"read {takes.words} here"

"""The types of step outputs, as JSON Schemas, that template reads are checked against.

A step's output type is its ``output_schema`` when the definition gives one, else what its
type says: the output model as stored (StepType.output_json_schema), the literal it
outputs (``sys.transform``'s ``value``), the schema written in its input
(``sys.wait_for_input``), or a loop's ``{count, results}`` of its body's outputs. A
loop's item type is that of the list its ``items`` reads, when that is one bare read of
a step's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowledger.definition.graph import StepPlace
from flowledger.definition.schemas import Schema, schema_of_literal, walk
from flowledger.definition.strictness import checking_new
from flowledger.steps.registry import StepRegistry


class OutputTypes:
    def __init__(
        self,
        places: Mapping[str, StepPlace],
        registry: StepRegistry,
        unchecked: set[str] | None = None,
    ) -> None:
        #: Steps whose output type is unknown (their definition was refused): anything goes.
        self._unchecked = unchecked or set()
        self._places = places
        self._registry = registry
        self._schemas: dict[str, Schema | None] = {}

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

    def item_schema(self, loop_id: str) -> Schema | None:
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

"""The step-type catalogue: what each registered step type, built-in or plugin, takes and
gives, read from its input and output models (their JSON Schemas), so a newcomer need not
read the source. ``flowledger steps list|show`` and the reference of the built-ins (a
Markdown page the CLI writes) render these documents.

An input field is ``{name, type, required, default, description, secrets}``: ``type`` in
words (``integer (1 to 1,000)``, ``list of string``, ``"GET" | "POST"``), ``default``
null when ``required``, ``secrets`` whether it may hold ``{{ secrets.NAME }}``. A field of
a nested model is named by its path (``on_timeout.default``, ``executions[].id``). The
output is its fields, or, for a type whose output has none declared (``sys.transform``
outputs its ``value``), ``outputIs`` says what it is.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import PydanticUndefined
from typing_extensions import TypedDict

from flowledger.app.models import Request
from flowledger.definition.input_fields import document_fields
from flowledger.errors import NotFoundError, did_you_mean
from flowledger.steps.base import StepType
from flowledger.steps.registry import StepRegistry

_BUILTIN_PREFIX = "sys."
#: How deep nested models' fields are listed (a model that holds itself stops there).
_MAX_DEPTH = 4


class ListStepTypes(Request):
    #: True: the built-in (``sys.*``) types alone; False: the plugins' alone; None: all.
    builtin: bool | None = None


class GetStepType(Request):
    name: str = Field(min_length=1, max_length=200)


class InputFieldDocument(TypedDict):
    name: str
    type: str
    required: bool
    #: The value when it is not given (null when required).
    default: Any
    description: str
    #: It may hold ``{{ secrets.NAME }}`` (StepType.secret_fields).
    secrets: bool


class OutputFieldDocument(TypedDict):
    name: str
    type: str
    description: str


class StepTypeDocument(TypedDict):
    name: str
    #: How the scheduler runs it (StepKind): ``task``, ``condition``, ``loop``, …
    kind: str
    description: str
    builtin: bool
    #: The Python module that declares its handler (None: the scheduler runs it).
    module: str | None
    input: list[InputFieldDocument]
    #: None when its output declares no fields; ``outputIs`` then says what it is.
    output: list[OutputFieldDocument] | None
    outputIs: str | None


class StepTypes:
    """The registry's step types as documents (no database: the engine need not open)."""

    def __init__(self, registry: StepRegistry) -> None:
        self._registry = registry

    async def list(self, request: ListStepTypes) -> list[StepTypeDocument]:
        """Every registered step type, by name (a built-in module is imported to read it)."""
        found = [
            step
            for step in self._registry
            if not step.stands_in and (request.builtin is None or _builtin(step) == request.builtin)
        ]
        return [describe(step) for step in sorted(found, key=lambda s: s.name)]

    async def get(self, request: GetStepType) -> StepTypeDocument:
        step = self._registry.get(request.name)
        if step is None or step.stands_in:
            hint = did_you_mean(request.name, self._registry.names())
            raise NotFoundError(
                f"no step type {request.name!r}{hint} (load custom step types with --plugin, "
                "or Engine(plugins=[...]))"
            )
        return describe(step)


def describe(step: StepType) -> StepTypeDocument:
    """One step type's document."""
    output_schema = step.output_json_schema()
    output = None
    if output_schema is not None and output_schema.get("type") == "object":
        output = None if step.never_completes else list(_output_fields(output_schema))
    return {
        "name": step.name,
        "kind": str(step.kind),
        "description": _plain(step.description),
        "builtin": _builtin(step),
        "module": _module(step),
        "input": list(_input_fields(step)),
        "output": output,
        "outputIs": _output_is(step, output, output_schema),
    }


def _builtin(step: StepType) -> bool:
    return step.name.startswith(_BUILTIN_PREFIX)


def _module(step: StepType) -> str | None:
    if step.handler is None:
        return None
    handler = inspect.unwrap(step.handler)
    return str(getattr(handler, "__module__", None) or "") or None


def _output_is(
    step: StepType, output: list[OutputFieldDocument] | None, schema: Mapping[str, Any] | None
) -> str | None:
    """The output in words, when its fields do not say it."""
    if step.never_completes:
        return "nothing: the step always fails"
    if step.output_is_input is not None:
        return f"the rendered `{step.output_is_input}`, whatever it holds"
    if step.output_schema_in_input is not None:
        field = step.output_schema_in_input
        return f"the data submitted, which matches the JSON Schema in `{field}` when given"
    if schema is not None and output is None:  # a RootModel's: the output is that value
        return f"a value of type {_type(schema, schema.get('$defs', {}), nullable=True)}"
    if output is None:
        return "any JSON: the step type declares no output model"
    return None


def _input_fields(step: StepType) -> Iterator[InputFieldDocument]:
    model = step.input_model
    schema = model.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    properties = schema.get("properties", {})
    for name, field in document_fields(model).items():
        required = field.is_required()
        default = None if required else field.get_default(call_default_factory=True)
        node = properties.get(name, {})
        yield {
            "name": name,
            "type": _type(node, defs, nullable=False),
            "required": required,
            "default": _json(default),
            "description": _plain(field.description or ""),
            "secrets": name in step.secret_fields,
        }
        for path, inner, inner_required in _nested(node, defs, name, 1):
            yield {
                "name": path,
                "type": _type(inner, defs, nullable=False),
                "required": inner_required,
                "default": _json(inner.get("default")),
                "description": _plain(inner.get("description", "")),
                "secrets": name in step.secret_fields,
            }


def _output_fields(schema: Mapping[str, Any]) -> Iterator[OutputFieldDocument]:
    defs = schema.get("$defs", {})
    for name, node in schema.get("properties", {}).items():
        yield {
            "name": name,
            "type": _type(node, defs, nullable=True),
            "description": _plain(node.get("description", "")),
        }
        for path, inner, _required in _nested(node, defs, name, 1):
            yield {
                "name": path,
                "type": _type(inner, defs, nullable=True),
                "description": _plain(inner.get("description", "")),
            }


def _nested(
    node: Mapping[str, Any], defs: Mapping[str, Any], path: str, depth: int
) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """The fields of the model a field holds (itself, in a list, or in a union with null),
    each as (its path, its schema, whether it is required)."""
    if depth > _MAX_DEPTH:
        return
    node = _resolved(node, defs)
    members = [m for m in node.get("anyOf", []) if _resolved(m, defs).get("type") != "null"]
    if len(members) == 1:
        node = _resolved(members[0], defs)
    if node.get("type") == "array" and isinstance(node.get("items"), Mapping):
        yield from _nested(node["items"], defs, f"{path}[]", depth)
        return
    properties = node.get("properties")
    if node.get("type") != "object" or not isinstance(properties, Mapping):
        return
    required = set(node.get("required", ()))
    for name, inner in properties.items():
        inner_path = f"{path}.{name}"
        yield inner_path, inner, name in required
        yield from _nested(inner, defs, inner_path, depth + 1)


def _resolved(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node``, or the definition its ``$ref`` names (with its own description kept)."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target = defs.get(ref.rsplit("/", 1)[-1], {})
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


#: JSON Schema's string formats, as a field's type is said.
_FORMATS = {"duration": "duration", "date-time": "time", "decimal": "decimal (as text)"}


def _type(node: Mapping[str, Any], defs: Mapping[str, Any], *, nullable: bool) -> str:
    """A field's type in words, from its JSON Schema. ``nullable``: say ``null`` where
    the schema allows it (an output may be null; an input given null is as if left out)."""
    node = _resolved(node, defs)
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    if "anyOf" in node:
        members = [_type(m, defs, nullable=nullable) for m in node["anyOf"]]
        kept = [m for m in dict.fromkeys(members) if nullable or m != "null"]
        # A bound of the whole union (``Field(gt=0)`` on ``float | None``) is said after it.
        return (" | ".join(kept) or "null") + _numeric_bounds(node)
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        inner = _type(items, defs, nullable=nullable) if isinstance(items, Mapping) else "any"
        said = "list" if inner == "any" else f"list of {_parenthesised(inner)}"
        return said + _bounds(node, "maxItems", "minItems", "items")
    if kind == "object":
        extra = node.get("additionalProperties")
        if "properties" not in node and isinstance(extra, Mapping) and extra:
            return f"object of {_parenthesised(_type(extra, defs, nullable=nullable))}"
        return "object"
    if kind == "string":
        said = _FORMATS.get(str(node.get("format")), "string")
        return said + _bounds(node, "maxLength", "minLength", "characters")
    if kind in ("integer", "number"):
        return str(kind) + _numeric_bounds(node)
    if isinstance(kind, str):
        return kind
    return "any"


def _parenthesised(text: str) -> str:
    return f"({text})" if " | " in text else text


def _bounds(node: Mapping[str, Any], most: str, least: str, unit: str) -> str:
    low, high = node.get(least), node.get(most)
    if low is not None and high is not None:
        return f" ({_number(low)} to {_number(high)} {unit})"
    if high is not None:
        return f" (at most {_number(high)} {unit})"
    if low:
        return f" (at least {_number(low)} {unit})"
    return ""


def _numeric_bounds(node: Mapping[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    above, below = node.get("exclusiveMinimum", node.get("gt")), node.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f" ({_number(low)} to {_number(high)})"
    words = []
    if low is not None:
        words.append(f"at least {_number(low)}")
    if above is not None:
        words.append(f"more than {_number(above)}")
    if high is not None:
        words.append(f"at most {_number(high)}")
    if below is not None:
        words.append(f"less than {_number(below)}")
    return f" ({', '.join(words)})" if words else ""


def _number(value: Any) -> str:
    """``10,000``; ``0`` for a float bound of ``0.0`` (pydantic's for ``gt=0`` on a Decimal)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int | float) else str(value)


def _plain(text: str) -> str:
    """A docstring's reST literal (``value``) as Markdown's (`value`), lines joined."""
    return " ".join(text.replace("``", "`").split())


def _json(value: Any) -> Any:
    """A default as JSON data (a model's default as its fields)."""
    if value is PydanticUndefined:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value

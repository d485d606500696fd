"""Whether a model's JSON-mode dump can turn NaN or an infinity into null.

pydantic's JSON mode keeps a NaN held by a ``float`` field (for ``jsonvalues.to_plain`` to
refuse) but writes one as null wherever it serializes by inference: an ``Any`` field, a
bare ``dict`` or ``list``, an extra field, a custom serializer's untyped result. A step's
output model is dumped once in Python mode too, to find such a NaN before it is stored as
null; a model whose schema has no such place needs only the JSON dump (a ``sys.condition``
step's output: 4.2 -> 2.0 us). The answer is read from the model's core schema once per
class and fails closed: a schema node this module does not know counts as inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel

#: Core-schema nodes whose JSON dump keeps a float a float, given their inner schemas.
_KEEPS_FLOATS = frozenset(
    {
        # leaves
        "bool", "int", "float", "decimal", "str", "bytes", "none", "literal", "enum",
        "date", "time", "datetime", "timedelta", "uuid", "url", "multi-host-url",
        # structure
        "model", "model-fields", "model-field", "typed-dict", "typed-dict-field",
        "dataclass", "dataclass-args", "dataclass-field", "computed-field",
        "nullable", "union", "tagged-union", "default", "definitions", "definition-ref",
        "lax-or-strict", "json-or-python", "custom-error",
        "list", "set", "frozenset", "tuple", "dict",
        # serialization forms of the leaves above
        "format", "to-string", "include-exclude-sequence", "include-exclude-dict",
    }
)  # fmt: skip

#: Containers whose items serialize by inference when their item schema is left out
#: (a bare ``dict`` or ``list``).
_ITEM_SCHEMAS: Mapping[str, tuple[str, ...]] = {
    "list": ("items_schema",),
    "set": ("items_schema",),
    "frozenset": ("items_schema",),
    "tuple": ("items_schema",),
    "dict": ("keys_schema", "values_schema"),
}

#: Keys whose values are data (defaults, allowed values, notes), not schemas.
_DATA_KEYS = frozenset({"default", "expected", "members", "metadata", "cls", "ref"})


@cache
def may_hide_non_finite(model: type[BaseModel]) -> bool:
    """True when a NaN or infinity somewhere in ``model``'s instances could be dumped in
    JSON mode as null (see the module's docstring); False only when every place a value
    sits is typed by a schema that keeps floats."""
    return _infers(model.__pydantic_core_schema__)


def _infers(node: Any) -> bool:
    if isinstance(node, list | tuple):
        return any(_infers(item) for item in node)
    if not isinstance(node, Mapping):
        return False
    kind = node.get("type")
    if isinstance(kind, str):
        if kind not in _KEEPS_FLOATS:
            return True
        if any(key not in node for key in _ITEM_SCHEMAS.get(kind, ())):
            return True
    # An extra field (``extra="allow"``) is dumped by inference.
    if node.get("extra_behavior") == "allow" or node.get("extra_fields_behavior") == "allow":
        return True
    return any(_infers(value) for key, value in node.items() if key not in _DATA_KEYS)

"""A step's input as written, against its input model: the fields it does not have.

A field the model does not declare is refused, in a nested model too (in a list or a
mapping of them, or in a Union of models, where the value must fit one of the members
it may be). Each literal field is validated on its own (``field_adapter``) where the
input holds templates and the model cannot run whole.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import types
import typing
import uuid
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter

from flowledger.definition.strictness import checking_new
from flowledger.errors import Path, unknown_field
from flowledger.templates import contains_template


def unknown_fields(
    type_name: str,
    model: type[BaseModel],
    raw: Mapping[str, Any],
    where: Path,
    nested: bool = False,
    union: Sequence[type[BaseModel]] = (),
) -> list[tuple[str, Path]]:
    """The fields of ``raw`` that ``model`` does not have, each with its message and
    path, and those of the models nested in it; ``union``: the members of the Union
    ``model`` was chosen from, named in the message."""
    fields = document_fields(model)
    by_attribute = model.model_fields if takes_names(model) else {}
    found: list[tuple[str, Path]] = []
    for name, value in raw.items():
        field = fields.get(name) or by_attribute.get(name)
        if field is None:
            listed = None
            if union:
                known = ", ".join(fields) or "none"
                names = ", ".join(m.__name__ for m in union)
                listed = f"as {_a_name(model)}, its fields: {known}; it fits none of {names}"
            what = "field" if nested else "input field"
            message = unknown_field(
                name, list(fields), what=what, of=f" for {type_name}", listed=listed
            )
            found.append((message, (*where, name)))
            continue
        # A nested model of a plugin's input is held to its fields the same way (a
        # typo'd ``cty`` left ``city`` empty), in a list or a mapping of them too;
        # one that allows extras says so.
        for members, item, at in _nested_models(field.annotation, value, (*where, name)):
            found += _unknown_in_members(type_name, members, item, at)
    return found


def _unknown_in_members(
    type_name: str,
    members: Sequence[type[BaseModel]],
    value: Mapping[str, Any],
    where: Path,
) -> list[tuple[str, Path]]:
    """What of ``value`` fits none of ``members`` (the models a field may hold).

    One member: its unknown fields, unless it allows extras. Several (a Union, which
    pydantic fills with the first member that validates, dropping the fields it
    lacks): nothing when ``value`` fits one of those it may be, else the problems of
    the closest of them (the fewest, the first of as few). It may not be a member
    whose required field it lacks or whose ``Literal`` field it gives another value
    (a discriminator), unless it may be none: then each is asked."""
    if len(members) == 1:
        # "forbid" too: the message with the fields there are is made here alone.
        if members[0].model_config.get("extra") in ("allow", "ignore"):
            return []
        return unknown_fields(type_name, members[0], value, where, nested=True)
    candidates = [m for m in members if _may_be(m, value)] or list(members)
    if any(m.model_config.get("extra") in ("allow", "ignore") for m in candidates):
        return []  # a member that takes any field fits
    found: list[tuple[str, Path]] | None = None
    for member in candidates:
        problems = unknown_fields(type_name, member, value, where, nested=True, union=members)
        if not problems:
            return []
        if found is None or len(problems) < len(found):
            found = problems
    return found or []


def has_template(value: Any) -> bool:
    """Whether a value as written holds a template anywhere (not known before the run)."""
    if isinstance(value, str):
        return contains_template(value)
    if isinstance(value, Mapping):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def document_fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the names documents use: a field's alias when it has one
    (``json`` for ``json_``)."""
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def takes_names(model: type[BaseModel]) -> bool:
    """The model takes its fields by name too (``body_text`` for alias ``bodyText``)."""
    config = model.model_config
    return bool(config.get("populate_by_name") or config.get("validate_by_name"))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``Address``, ``Address | None``), if it is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    branches = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(branches) == 1 and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _model_of(branches[0])
    return None


def _nested_models(
    annotation: Any, value: Any, where: Path
) -> Iterator[tuple[tuple[type[BaseModel], ...], Mapping[str, Any], Path]]:
    """The literal mappings of ``value`` that a field of type ``annotation`` validates as
    pydantic models, with the models each may be and its path: the value itself
    (``Address``, ``Address | None``; in a new definition ``Card | Bank``), the items of
    a list of them (``list[Address]``) or the values of a mapping of them
    (``dict[str, Address]``). A template anywhere is not known yet and is left alone."""
    if typing.get_origin(annotation) is Annotated and checking_new():
        annotation = _unannotated(annotation)  # Annotated[Card | Bank, Field(discriminator=…)]
    model = _model_of(annotation)
    if model is not None:
        if isinstance(value, Mapping):
            yield (model,), value, where
        return
    origin = typing.get_origin(annotation)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(arguments) == 1:
        yield from _nested_models(arguments[0], value, where)
    elif origin in (typing.Union, types.UnionType) and checking_new():
        # A rule added later: a stored version's Union members were never checked.
        yield from _union_members(arguments, value, where)
    elif origin in (list, tuple, set, frozenset, Sequence, AbstractSet) and arguments:
        if isinstance(value, list):
            item_type = arguments[0]  # tuple[X, ...]: the same type for every item
            for index, item in enumerate(value):
                yield from _nested_models(item_type, item, (*where, index))
    elif origin in (dict, Mapping) and len(arguments) == 2 and isinstance(value, Mapping):
        for key, item in value.items():
            yield from _nested_models(arguments[1], item, (*where, key))


def _union_members(
    arguments: Sequence[Any], value: Any, where: Path
) -> Iterator[tuple[tuple[type[BaseModel], ...], Mapping[str, Any], Path]]:
    """The models a mapping given to a Union of ``arguments`` may be; a list given to one
    with a single kind of list is that list's."""
    if isinstance(value, list):
        lists = [a for a in arguments if typing.get_origin(a) in _LISTS]
        if len(lists) == 1:
            yield from _nested_models(lists[0], value, where)
        return
    if not isinstance(value, Mapping):
        return
    models: list[type[BaseModel]] = []
    for argument in arguments:
        member = _unannotated(argument)
        if isinstance(member, type) and issubclass(member, BaseModel):
            models.append(member)
        elif not _takes_no_mapping(member):
            return  # a dict, Any, a dataclass: it may take any mapping
    if models:
        yield tuple(models), value, where


_LISTS = (list, tuple, set, frozenset, Sequence, AbstractSet)
#: Types whose validation never takes a mapping (pydantic's lax mode).
_NO_MAPPING: tuple[type, ...] = (str, int, float, bool, bytes, decimal.Decimal, enum.Enum)
_NO_MAPPING += (datetime.date, datetime.time, datetime.timedelta, uuid.UUID)


def _unannotated(annotation: Any) -> Any:
    """``Annotated[X, ...]`` as ``X``, unless a validator of its own may take anything."""
    if typing.get_origin(annotation) is Annotated:
        if any(callable(getattr(m, "func", None)) for m in annotation.__metadata__):
            return Any  # BeforeValidator and the like: not known
        return _unannotated(typing.get_args(annotation)[0])
    return annotation


def _takes_no_mapping(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, _NO_MAPPING):
        return True
    return typing.get_origin(annotation) in (*_LISTS, typing.Literal)


def _may_be(model: type[BaseModel], value: Mapping[str, Any]) -> bool:
    """Whether pydantic may validate ``value`` as ``model``: not when it lacks one of the
    model's required fields, or gives a ``Literal`` field (a discriminator) a value it
    does not list."""
    by_name = takes_names(model)
    for attribute, field in model.model_fields.items():
        name = field.alias or attribute
        given = name in value or (by_name and attribute in value)
        if not given:
            if field.is_required():
                return False
            continue
        choice = value[name] if name in value else value[attribute]
        if typing.get_origin(field.annotation) is not typing.Literal or has_template(choice):
            continue
        if choice not in typing.get_args(field.annotation):
            return False
    return True


def _a_name(model: type[BaseModel]) -> str:
    name = model.__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


@functools.cache
def field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    """A validator of one input field (by its name in documents), with the field's own
    validators and constraints (``timeout: "3s"``). Built once per step type and field:
    building one is ~50-120 us, and a definition checks each literal field of each
    step (2,000 HTTP steps with three literal fields each: 840-1,180 -> 260-330 ms)."""
    field = next(f for n, f in model.model_fields.items() if (f.alias or n) == name)
    annotation: Any = field.annotation or Any
    if field.metadata:
        annotation = Annotated[annotation, *field.metadata]
    return TypeAdapter(annotation)

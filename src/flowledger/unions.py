"""Pydantic's errors with each union said once, in the user's words.

A field typed ``str | list[str]`` that is given ``5`` fails every branch, and pydantic
reports one error per branch with the branch's name in its path
(``input.order_by.str: must be text``, ``input.order_by.list[str]: must be a list``).
A user wrote neither name: they get ``input.order_by: must be text or a list, not 5``.
When the value has the shape of one branch (a list whose second item is wrong), only
that branch's errors are kept, with its name taken out of their path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flowledger.errors import field_message, shown

#: How pydantic names a union's branches in an error's ``loc``: a type (``str``,
#: ``list[str]``, ``dict[str,int]``), a constrained or wrapped type (``constrained-int``,
#: ``function-after[…]``, ``literal['auto']``), or a model class (``RetrySpec``: see
#: :func:`_is_branch`). Document field names are lower case and never one of these.
_BRANCH = re.compile(
    r"^(?:str|int|float|bool|bytes|decimal|date|datetime|time|timedelta|url|uuid"
    r"|none|any|[a-z-]+\[.*\]|(?:constrained|function|lax|json|nullable)-[\w-]+(?:\[.*\])?)$"
)
_MODEL_NAME = re.compile(r"^[A-Z]\w*$")

#: Errors that say only that the value is not of the branch's type: a branch whose
#: errors are all of these is one the value never had the shape of.
_WRONG_SHAPE = frozenset(
    {
        "string_type",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "int_type",
        "int_parsing",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "datetime_type",
        "datetime_parsing",
        "url_type",
        "url_parsing",
        "literal_error",
        "enum",
        "none_required",
        "is_instance_of",
        "tuple_type",
        "set_type",
        "bytes_type",
    }
)

Error = Mapping[str, Any]


def plain_errors(errors: Iterable[Error]) -> list[dict[str, Any]]:
    """``ValidationError.errors()`` with every failed union said once (see the module)."""
    return _collapse([dict(error) for error in errors], _Models())


def _collapse(errors: list[dict[str, Any]], models: _Models) -> list[dict[str, Any]]:
    # In order: an error as it is, or the path of a union (at its first error's place)
    # whose branches' errors are gathered in ``unions``.
    order: list[dict[str, Any] | tuple[Any, ...]] = []
    unions: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        # An unknown field's name is the user's, whatever it looks like ("FALSE", "Id").
        named = loc[:-1] if error.get("type") == "extra_forbidden" else loc
        at = next((i for i, part in enumerate(named) if _is_branch(part, models)), None)
        if at is None:
            order.append(error)
            continue
        prefix = loc[:at]
        if prefix not in unions:
            unions[prefix] = {}
            order.append(prefix)
        unions[prefix].setdefault(str(loc[at]), []).append(
            {**error, "loc": (*prefix, *loc[at + 1 :])}
        )
    result: list[dict[str, Any]] = []
    for entry in order:
        if isinstance(entry, dict):
            result.append(entry)
            continue
        branches = unions[entry]
        if len(branches) == 1:  # a lone name is no union's: give the errors back as they were
            ((name, errs),) = branches.items()
            at = len(entry)
            result.extend({**e, "loc": (*entry, name, *e["loc"][at:])} for e in errs)
        else:
            result.extend(_union(entry, branches, models))
    return result


def _is_branch(part: Any, models: _Models) -> bool:
    """A capitalised part is a branch only when some pydantic model has that name: a
    mapping's keys are in the path too, and two headers such as ``Authorization`` and
    ``Accept`` with bad values were read as a union's branches (one error, no key)."""
    if not isinstance(part, str):
        return False
    if _MODEL_NAME.match(part):
        return part in models.names
    return _BRANCH.match(part) is not None


class _Models:
    """The names of every pydantic model class defined so far (plugins' too), gathered at
    most once per ``plain_errors`` and only when a path has a capitalised part."""

    def __init__(self) -> None:
        self._names: set[str] | None = None

    @property
    def names(self) -> set[str]:
        if self._names is None:
            from pydantic import BaseModel  # whoever has errors to say has pydantic loaded

            names: set[str] = set()
            seen: set[type] = set()
            waiting: list[type] = [BaseModel]
            while waiting:
                subclasses: list[type] = waiting.pop().__subclasses__()
                for model in subclasses:
                    if model not in seen:
                        seen.add(model)
                        names.add(model.__name__)
                        waiting.append(model)
            self._names = names
        return self._names


def _union(
    prefix: tuple[Any, ...], branches: Mapping[str, list[dict[str, Any]]], models: _Models
) -> list[Any]:
    fitting = [errs for errs in branches.values() if not all(_wrong_shape(e, prefix) for e in errs)]
    if fitting:  # the value has the shape of these branches: their errors are the ones
        return _collapse([error for errs in fitting for error in errs], models)
    first = next(iter(branches.values()))[0]
    wants: list[str] = []
    for errs in branches.values():
        want = field_message({k: v for k, v in errs[0].items() if k != "input"})
        if want not in wants:
            wants.append(want)
    said = _either(wants)
    if "input" in first:
        said += f", not {shown(first['input'])}"
    return [{"type": "union_mismatch", "loc": prefix, "msg": said, "input": first.get("input")}]


def _wrong_shape(error: Mapping[str, Any], prefix: tuple[Any, ...]) -> bool:
    return error.get("type") in _WRONG_SHAPE and len(error.get("loc", ())) == len(prefix)


def _either(wants: list[str]) -> str:
    """``must be text or a list``; of three or more, ``must be text, a whole number, true
    or false, or a list``."""
    if not all(want.startswith("must be ") for want in wants):
        return " or ".join(wants)
    kinds = [want.removeprefix("must be ") for want in wants]
    if len(kinds) <= 2:
        return "must be " + " or ".join(kinds)
    return "must be " + ", ".join(kinds[:-1]) + ", or " + kinds[-1]

"""Query parameters a route does not take, or takes once but got twice, are refused.

FastAPI ignores a query parameter no route declares and keeps the last of a repeated
one, so ``GET /api/v1/executions?stauts=Failed`` listed every execution, and a script
acting on that list (cancelling "the failed ones") acted on all of them; with
``?limit=5&limit=500`` one reader of the URL saw 5 and the server used 500. Every
route under ``/api/v1`` depends on :func:`known_parameters`, which answers 422
``invalid_input`` naming the parameter and what the route takes. ``/hooks`` keeps any
query (it is trigger data), and the web pages are not API routes.

The same for an ``Idempotency-Key`` header sent to a route that changes something but
does not take one: it was ignored, so a client retrying after a timeout did it twice
(``POST /workflow-runs`` started two runs). Only a safe method (GET, HEAD) may carry one
it does not use: it repeats nothing.
"""

from __future__ import annotations

import types
import typing
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from flowledger.errors import InvalidInputError

#: A route's endpoint → its query parameters' names, each with whether it may repeat (a
#: list). By endpoint: routes are not hashable, and every app built mounts the same ones.
_DECLARED: dict[Callable[..., Any], dict[str, bool]] = {}


async def known_parameters(request: Request) -> None:
    """InvalidInputError for a query parameter the route does not declare, or one that
    is not a list and was sent more than once; and for an ``Idempotency-Key`` sent to a
    route that changes something and does not take one."""
    scope = request.scope
    route = scope.get("route")
    if not isinstance(route, APIRoute):
        return
    if scope["method"] not in _SAFE and not _takes_key(route):
        for name, _ in scope["headers"]:
            if name == b"idempotency-key":
                raise InvalidInputError(
                    "this route does not take it, and would do what it asks again on a "
                    "retry; only a start, POST /workflow-runs and POST /job-runs do",
                    ("Idempotency-Key",),
                )
    if not scope.get("query_string"):
        return
    declared = _declared(route)
    counts = Counter(name for name, _ in request.query_params.multi_items())
    for name, count in counts.items():
        if name not in declared:
            takes = ", ".join(sorted(declared)) or "none"
            raise InvalidInputError(
                f"not a parameter of this route (its query parameters: {takes})", (name,)
            )
        if count > 1 and not declared[name]:
            raise InvalidInputError(f"sent {count} times; send the parameter once", (name,))


_SAFE = frozenset({"GET", "HEAD"})
#: A route's endpoint → whether it declares the ``Idempotency-Key`` header.
_KEYED: dict[Callable[..., Any], bool] = {}


def _takes_key(route: APIRoute) -> bool:
    found = _KEYED.get(route.endpoint)
    if found is None:
        names = {p.alias.lower() for p in route.dependant.header_params}
        found = _KEYED[route.endpoint] = "idempotency-key" in names
    return found


def _declared(route: APIRoute) -> dict[str, bool]:
    found = _DECLARED.get(route.endpoint)
    if found is None:
        found = {}
        dependants: list[Dependant] = [route.dependant]
        while dependants:  # the route's own parameters and its dependencies' (paging)
            dependant = dependants.pop()
            for param in dependant.query_params:
                found[param.alias] = _is_list(param.field_info.annotation)
            dependants.extend(dependant.dependencies)
        _DECLARED[route.endpoint] = found
    return found


def _is_list(annotation: Any) -> bool:
    """``list[str]``, ``list[str] | None``, ``Optional[list[str]]``."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return False

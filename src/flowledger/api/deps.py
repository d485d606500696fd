"""What routes depend on: the opened application, and the caller's token and role.

``AppDep`` is the :class:`App` the server opened (``request.app.state.flowledger``).
``require(role)`` is a dependency that yields the :class:`Principal` presenting a bearer
token of at least that role: 401 without a token or with a bad one, 403 for a role too
low. The check itself is the application's (``App.tokens.authenticate``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowledger.app import App, Authenticate, Caller, Role
from flowledger.app.tokens import token_hash
from flowledger.config import Limits
from flowledger.errors import InvalidInputError

#: The prefix of every route of SPEC §6 (not of /healthz, /readyz, /metrics, /hooks).
API_PREFIX = "/api/v1"

__all__ = [
    "API_PREFIX",
    "AppDep",
    "IdempotencyKey",
    "LimitsDep",
    "Paging",
    "Principal",
    "Role",
    "get_app",
    "key_as_header",
    "require",
]


# Both async: FastAPI runs a plain ``def`` dependency on a worker thread, a hop per request.
async def get_app(request: Request) -> App:
    app: App = request.app.state.flowledger
    return app


async def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


AppDep = Annotated[App, Depends(get_app)]
LimitsDep = Annotated[Limits, Depends(get_limits)]

_bearer = HTTPBearer(auto_error=False, description="An API token: `flowledger tokens create`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Principal:
    """The caller: its token's name and role, and the ``createdBy`` of what it starts
    (the application's, ``Caller``: ``api-token:NAME``)."""

    name: str
    role: Role
    created_by: str
    #: The hash of the token presented (a live stream checks it again as it goes).
    credential: str | None = None

    @classmethod
    def of(cls, caller: Caller, credential: str | None = None) -> Principal:
        return cls(caller["name"], caller["role"], caller["createdBy"], credential)


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency yielding the caller, who must hold a token of ``role`` or higher."""

    async def principal(app: AppDep, credentials: BearerDep) -> Principal:
        token = credentials.credentials if credentials is not None else None
        caller = await app.tokens.authenticate(Authenticate(token=token, needs=role))
        return Principal.of(caller, token_hash(token) if token else None)

    principal.__name__ = f"require_{role}"
    return principal


async def paging(
    limit: Annotated[
        int | None, Query(description="1 to 1000 (FLOWLEDGER_MAX_PAGE); a default otherwise")
    ] = None,
    cursor: Annotated[str | None, Query(description="A page's nextCursor, as given")] = None,
) -> dict[str, Any]:
    """A list's ``limit`` and ``cursor`` as given (the request model's defaults and checks
    stand for the rest: 422 outside 1-1000, 400 for a cursor it did not make)."""
    return {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}


#: Keyword arguments for a listing request: ``ListX(**paging)``.
Paging = Annotated[dict[str, Any], Depends(paging)]

Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]


#: The ``Idempotency-Key`` of a route that creates something once per key (a start, a
#: workflow run, a job run); api.parameters refuses it on a route that does not take it.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Create once per key (at most 160 printable ASCII characters): a "
        "request with a key used before answers what that key created (201, as then), or "
        "409 when the request differs.",
    ),
]


@contextmanager
def key_as_header() -> Iterator[None]:
    """Name the key as the client sent it, a header, in a refusal of the request built
    inside (the request model calls it ``idempotencyKey``, a body field's name)."""
    try:
        yield
    except InvalidInputError as exc:
        raise exc.renamed("idempotencyKey", "Idempotency-Key") from None

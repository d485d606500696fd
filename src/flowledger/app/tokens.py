"""API tokens: create (the secret shown once), list, revoke, and authenticate a caller.

A token is ``flt_`` + 43 url-safe characters (256 random bits). Only its SHA-256 is
stored: for random 256-bit secrets a fast hash is as strong as a slow one, and any
process on the database can check a token without a shared key. The lookup is by hash
and the stored hash is compared again with ``hmac.compare_digest`` (constant time).

Roles are ordered viewer < operator < admin (SPEC §5): ``viewer`` reads, ``operator``
also starts, cancels, retries, submits input and creates job runs and entities,
``admin`` also pushes workflows and manages entity types, tokens and subscriptions.
The rule "this role may do that" lives here (:meth:`Tokens.authenticate` with
``needs``), so every face enforces it the same way.

Decisions: a token's name is unique among tokens that are not revoked; creating a
token with a revoked one's name replaces that row. ``last_used_at`` is written at most
once a minute per token (a write on every request would cost more than it tells).
Every request reads its token afresh: a revocation takes effect at once everywhere.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app.models import Request
from flowledger.errors import AuthenticationError, ConflictError, ForbiddenError, NotFoundError
from flowledger.runtime.engine import Engine
from flowledger.timeutil import iso

Role = Literal["viewer", "operator", "admin"]
#: The roles, weakest first: a role may do whatever the ones before it may.
ROLES: tuple[Role, ...] = get_args(Role)
PREFIX = "flt_"
#: ``last_used_at`` is recorded at most this often per token.
TOUCH_EVERY = timedelta(minutes=1)
#: ``createdBy`` of what a token starts: ``api-token:NAME``.
CREATOR_PREFIX = "api-token:"


class CreateToken(Request):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    role: Role = "viewer"


class ListTokens(Request):
    pass


class RevokeToken(Request):
    name: str = Field(min_length=1, max_length=128)


class Authenticate(Request):
    """Check a presented token (None: none was given) and, with ``needs``, its role."""

    token: str | None = Field(default=None, max_length=256)
    needs: Role = "viewer"


class TokenDocument(TypedDict):
    name: str
    role: Role
    createdAt: str
    lastUsedAt: str | None
    revokedAt: str | None


class CreatedToken(TypedDict):
    name: str
    role: Role
    #: The secret: shown this once, never stored.
    token: str


class Caller(TypedDict):
    """Who a request is: the token's name and role, and the ``createdBy`` it leaves."""

    name: str
    role: Role
    createdBy: str


def allows(role: Role, needs: Role) -> bool:
    """Whether ``role`` may do what ``needs`` is required for."""
    return ROLES.index(role) >= ROLES.index(needs)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens:
    """The token operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def create(self, request: CreateToken) -> CreatedToken:
        """A new token; ConflictError when a token of that name is in use."""
        token = PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": str(uuid.uuid4()),
            "name": request.name,
            "role": request.role,
            "secret_hash": token_hash(token),
            "created_at": await self._engine.store.db_now(),
        }
        if not await self._engine.store.create_api_token(row):
            raise ConflictError(
                f"a token named {request.name!r} exists; revoke it first or pick another name"
            )
        return {"name": request.name, "role": request.role, "token": token}

    async def list(self, request: ListTokens) -> builtins.list[TokenDocument]:
        """Every token by name, revoked ones too (never their secrets)."""
        return [_document(row) for row in await self._engine.store.list_api_tokens()]

    async def revoke(self, request: RevokeToken) -> TokenDocument:
        """Revoke a token at once (revoking a revoked token changes nothing)."""
        row = await self._engine.store.revoke_api_token(request.name)
        if row is None:
            raise NotFoundError(f"there is no token named {request.name!r}")
        return _document(row)

    async def count(self) -> int:
        """How many tokens are usable (not revoked)."""
        return await self._engine.store.count_api_tokens()

    async def authenticate(self, request: Authenticate) -> Caller:
        """Who presents this token: AuthenticationError when it is missing, unknown or
        revoked; ForbiddenError when its role is below ``needs``."""
        token = request.token
        if not token:
            raise AuthenticationError("this needs an API token: Authorization: Bearer <token>")
        return await self.authenticate_hash(token_hash(token), request.needs)

    async def authenticate_hash(self, digest: str, needs: Role = "viewer") -> Caller:
        """:meth:`authenticate` for a token known by its hash (a web session keeps the
        hash, never the secret)."""
        row = await self._engine.store.find_api_token(digest)
        if (
            row is None
            or not hmac.compare_digest(str(row["secret_hash"]), digest)
            or row["revoked_at"] is not None
        ):
            raise AuthenticationError("the API token is not valid (unknown or revoked)")
        role: Role = row["role"]
        if not allows(role, needs):
            raise ForbiddenError(
                f"token {row['name']!r} has role {role}; this needs {needs} or higher"
            )
        await self._engine.store.touch_api_token(str(row["id"]), TOUCH_EVERY)
        return {"name": row["name"], "role": role, "createdBy": CREATOR_PREFIX + row["name"]}


def _document(row: dict[str, Any]) -> TokenDocument:
    def when(key: str) -> str | None:
        return iso(row[key]) if row[key] is not None else None

    return {
        "name": row["name"],
        "role": row["role"],
        "createdAt": iso(row["created_at"]),
        "lastUsedAt": when("last_used_at"),
        "revokedAt": when("revoked_at"),
    }

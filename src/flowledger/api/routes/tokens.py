"""API tokens over HTTP (SPEC §5: ``admin`` manages tokens): ``flowledger tokens
create|list|revoke`` for an operator who has the service and not its database.

``POST /tokens`` answers 201 with the secret, shown this once (``Cache-Control:
no-store``: no cache along the way keeps it), and records the caller as the token's
``createdBy`` (``api-token:NAME``); ``GET /tokens`` pages the tokens, newest first,
revoked and expired ones too, without secrets or hashes; ``DELETE /tokens/{name}`` revokes one,
which ends its open streams as ``tokens revoke`` does. Every rule (names, durations,
duplicates) is the application's (app.tokens).

Decision: an admin may revoke the token it calls with (a leaked token retires itself
even when no other admin token is at hand); the answer is the revoked token, and its
next request is a 401. The command line on the database makes a new one.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from flowledger.api.bodies import Body
from flowledger.api.deps import API_PREFIX, Admin, AppDep, Paging
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import page, render
from flowledger.app import (
    CreatedToken,
    CreateToken,
    ListTokens,
    Page,
    RevokeToken,
    Role,
    TokenDocument,
)

router = APIRouter(prefix=API_PREFIX, tags=["tokens"], responses=ERROR_RESPONSES)


class TokenBody(Body):
    """A token to create: ``flowledger tokens create NAME --role ROLE --expires-in D``."""

    name: str = Field(
        description="Letters, digits, '.', '_' and '-', a letter or digit first; unique "
        "among tokens not revoked"
    )
    role: Role = "viewer"
    # Text or seconds, as the command line takes it; CreateToken reads and checks it.
    expires_in: str | float | None = Field(
        default=None,
        description="How long it works: '30d', '12h', ISO-8601 'P30D' or seconds (at "
        "least 1s); without it, until revoked",
    )

    def request(self, created_by: str) -> CreateToken:
        given = self.model_dump(exclude_unset=True)
        return CreateToken(**given, created_by=created_by)


@router.get(
    "/tokens",
    response_model=Page[TokenDocument],
    summary="Tokens, newest first, one page at a time, revoked and expired ones too, "
    "never a secret (admin)",
    description="`createdBy` is who created each (`api-token:NAME`, `cli:USER`); null for "
    "a token made before that was recorded.",
)
async def list_tokens(app: AppDep, caller: Admin, paging: Paging) -> Response:
    found = await app.tokens.list(ListTokens(**paging))
    return page(list(found.items), found.next_cursor)


@router.post(
    "/tokens",
    status_code=201,
    response_model=CreatedToken,
    summary="Create a token; the answer holds its secret, once (admin)",
    description="409 when a token of that name is in use (not revoked); 422 for a name "
    "or a duration it does not take, saying why.",
)
async def create_token(body: TokenBody, app: AppDep, caller: Admin) -> Response:
    created = render(await app.tokens.create(body.request(caller.created_by)), 201)
    created.headers["Cache-Control"] = "no-store"  # the secret, shown once
    return created


@router.delete(
    "/tokens/{name}",
    response_model=TokenDocument,
    summary="Revoke a token now, the caller's own too; its streams end (admin)",
    description="Requests with it are refused from then on (at once on this server, "
    "within a second on the others) and its open event streams end. Revoking a revoked "
    "token changes nothing; an unknown name is a 404.",
)
async def revoke_token(name: str, app: AppDep, caller: Admin) -> Response:
    return render(await app.tokens.revoke(RevokeToken(name=name)))

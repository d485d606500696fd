"""``flowledger tokens create|list|revoke``: the API tokens of ``flowledger serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from flowledger.app import App, CreateToken, ListTokens, RevokeToken
from flowledger.cli.common import (
    CursorOption,
    DbOption,
    JsonOption,
    app,
    build,
    err,
    existing,
    out,
    print_json,
    with_app,
)
from flowledger.cli.render import table as new_table
from flowledger.cli.render import when
from flowledger.cli.who import cli_user

tokens_app = typer.Typer(help="API tokens for `flowledger serve`.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it).")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            metavar="viewer|operator|admin",
            help="viewer reads; operator also starts and controls; admin all.",
        ),
    ] = "viewer",
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            metavar="DURATION",
            help="It stops working after this long (30d, 12h); never, without.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    request = build(
        lambda: CreateToken(name=name, role=role, expires_in=expires_in, created_by=cli_user())
    )
    created = with_app(db, lambda application: application.tokens.create(request))
    out.print(created["token"], highlight=False)
    until = f", until {when(created['expiresAt'])}" if created["expiresAt"] else ""
    err.print(
        f"token {created['name']!r} ({created['role']}{until}) created; it is shown only this once",
        markup=False,
    )


@tokens_app.command("list")
def tokens_list(
    limit: Annotated[int, typer.Option("--limit", help="Tokens per page (1 to 1000).")] = 50,
    cursor: CursorOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens newest first: role, creator, last use and expiry (never the secrets)."""
    request = build(lambda: ListTokens(limit=limit, cursor=cursor))
    found = existing(db, lambda application: application.tokens.list(request))
    docs = [dict(d) for d in found.items]
    more = f"--cursor {found.next_cursor} for more" if found.next_cursor else None
    if as_json:
        # As `executions list --json`: stdout stays the documents' array, the cursor of
        # the next page goes to stderr.
        print_json(docs)
        if more:
            err.print(more, soft_wrap=True, markup=False, highlight=False)
        return
    if not docs:
        out.print("no tokens; create one: flowledger tokens create NAME --role admin")
        return
    table = new_table("name", "role", "created", "created by", "last used", "expires", "revoked")
    for doc in docs:
        expires = when(str(doc["expiresAt"] or "")) or "never"
        table.add_row(
            str(doc["name"]),
            str(doc["role"]),
            when(str(doc["createdAt"] or "")),
            str(doc["createdBy"] or "-"),
            when(str(doc["lastUsedAt"] or "")) or "never",
            f"expired {expires}" if doc["expired"] else expires,
            when(str(doc["revokedAt"] or "")),
        )
    out.print(table)
    if more:
        out.print(more, soft_wrap=True, markup=False, highlight=False)


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")], db: DbOption = None
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    request = build(lambda: RevokeToken(name=name))

    async def go(application: App) -> None:
        await application.tokens.revoke(request)

    existing(db, go)
    out.print(f"token {name!r} revoked")

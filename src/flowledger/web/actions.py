"""An operator's action posted from a page (cancel, retry): the form checked (role and
CSRF token), the application's operation called, then back to the page; a refusal shows
the page again with the application's message, under the status the API would answer.
Each handler names only its operation and its page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from flowledger.app.statuses import http_status
from flowledger.errors import FlowledgerError
from flowledger.web.auth import Form, changing, first
from flowledger.web.render import see_other

#: The operation of an action: called with who acts (the caller's ``createdBy``) and the
#: form posted.
Operation = Callable[[str, Form], Awaitable[object]]


@dataclass(frozen=True)
class ActionPage:
    """The page an action is posted from: its address (where the action returns to) and
    how to render it again (a status, the refusal's message)."""

    url: str
    again: Callable[[int, str], Awaitable[Response]]


async def act(request: Request, page: ActionPage, operation: Operation) -> Response:
    session, form = await changing(request, "operator")
    try:
        await operation(session.caller["createdBy"], form)
    except FlowledgerError as exc:
        return await page.again(http_status(exc)[0], str(exc))
    return see_other(page.url)


def reason(form: Form, default: str) -> str:
    """A cancel's reason as typed (the application checks its length), else ``default``."""
    return first(form, "reason").strip() or default

"""Who is at the browser: the session cookie resolved by the application (app.sessions),
the form body parsed, and the CSRF check of every state-changing request."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import Response

from flowledger.app import App, Role
from flowledger.app.sessions import CheckCsrf, ResolveSession, Session
from flowledger.errors import ForbiddenError

COOKIE = "flowledger_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: The largest form body the UI reads (a human-input form, a start form, an expression).
MAX_FORM = 1_000_000

Form = dict[str, list[str]]


def app_of(request: Request) -> App:
    app: App = request.app.state.flowledger
    return app


async def session_of(request: Request, needs: Role = "viewer") -> Session:
    """The signed-in session (AuthenticationError, ForbiddenError from the application)."""
    cookie = request.cookies.get(COOKIE)
    return await app_of(request).sessions.resolve(ResolveSession(session=cookie, needs=needs))


async def form_of(request: Request) -> Form:
    """An ``application/x-www-form-urlencoded`` body as lists of values."""
    body = await request.body()
    if len(body) > MAX_FORM:
        body = b""
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def first(form: Form, name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def same_origin(request: Request, *, opaque_ok: bool = True) -> None:
    """Refuse a POST that a browser says came from another site's page (``Origin``), also
    for the sign-in form, which has no session to bind a CSRF token to yet. An opaque
    origin (``null``: a sandboxed frame, a cross-site redirect) passes only where a CSRF
    token stands behind it: the sign-in passes ``opaque_ok=False``, or a hidden frame
    could sign a victim in as the attacker (login CSRF)."""
    origin = request.headers.get("origin")
    here = f"{request.url.scheme}://{request.url.netloc}"
    if origin is None or origin == here or (origin == "null" and opaque_ok):
        return
    raise ForbiddenError(f"a form from {origin} may not post here")


async def changing(request: Request, needs: Role) -> tuple[Session, Form]:
    """A state-changing request: a session of ``needs`` or higher, and a CSRF token that
    matches it (a form field, or the header htmx sends)."""
    same_origin(request)
    session = await session_of(request, needs)
    form = await form_of(request)
    presented = first(form, CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    await app_of(request).sessions.check_csrf(CheckCsrf(session=session.value, csrf=presented))
    return session, form


def set_session(response: Response, request: Request, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.value,
        max_age=session.max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")

"""Browser sessions (app.sessions): a token exchanged for a signed value that holds no
secret, refused when forged, expired or revoked; CSRF tokens bound to the session."""

from __future__ import annotations

import base64
import json

import pytest

from flowledger.app import App, CreateToken, RevokeToken
from flowledger.app.sessions import CheckCsrf, ResolveSession, SignIn
from flowledger.errors import AuthenticationError, ForbiddenError


async def test_sign_in_resolve_and_csrf(app: App) -> None:
    token = (await app.tokens.create(CreateToken(name="ops", role="operator")))["token"]
    session = await app.sessions.sign_in(SignIn(token=token))
    assert token not in session.value and session.caller["role"] == "operator"
    again = await app.sessions.resolve(ResolveSession(session=session.value, needs="operator"))
    assert again.caller["name"] == "ops" and again.csrf == session.csrf
    await app.sessions.check_csrf(CheckCsrf(session=session.value, csrf=session.csrf))
    # One character changed (never to itself: a token starting with "x" would pass).
    changed = ("y" if session.csrf[0] == "x" else "x") + session.csrf[1:]
    for wrong in (None, "", changed):
        with pytest.raises(ForbiddenError):
            await app.sessions.check_csrf(CheckCsrf(session=session.value, csrf=wrong))
    with pytest.raises(ForbiddenError):
        await app.sessions.resolve(ResolveSession(session=session.value, needs="admin"))


async def test_refused_sessions(app: App) -> None:
    token = (await app.tokens.create(CreateToken(name="v", role="viewer")))["token"]
    with pytest.raises(AuthenticationError):
        await app.sessions.sign_in(SignIn(token="flt_nope"))
    session = await app.sessions.sign_in(SignIn(token=token))
    payload, _, signature = session.value.partition(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["exp"] += 10**6
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    for value in (None, "", "garbage", f"{forged}.{signature}", session.value + "x"):
        with pytest.raises(AuthenticationError):
            await app.sessions.resolve(ResolveSession(session=value))
    await app.tokens.revoke(RevokeToken(name="v"))
    with pytest.raises(AuthenticationError):
        await app.sessions.resolve(ResolveSession(session=session.value))


async def test_signing_out_ends_the_token_s_sessions_everywhere(app: App, db_url: str) -> None:
    """Signing out only deleted the browser's cookie: a copy of it stayed signed in for
    up to 12 hours. Now every server on the database refuses the token's sessions made
    before the sign-out; a new sign-in works."""
    token = (await app.tokens.create(CreateToken(name="out", role="viewer")))["token"]
    here = await app.sessions.sign_in(SignIn(token=token))
    copied = await app.sessions.sign_in(SignIn(token=token))  # another browser, or a thief
    async with App(db_url) as other:  # another server on the same database
        await app.sessions.resolve(ResolveSession(session=copied.value))
        await app.sessions.sign_out(here)
        for server in (app, other):
            for value in (here.value, copied.value):
                with pytest.raises(AuthenticationError, match="signed out"):
                    await server.sessions.resolve(ResolveSession(session=value))
        again = await app.sessions.sign_in(SignIn(token=token))
        assert (await other.sessions.resolve(ResolveSession(session=again.value))).caller

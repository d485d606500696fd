"""Browser sessions: an API token exchanged for a signed session value, and the CSRF
token that goes with it (the web UI's cookie and forms).

The session value is ``base64url(JSON {h: token hash, exp: unix seconds}) + "." +
base64url(HMAC-SHA256)``. It holds the token's *hash*, never the secret, so a stolen
cookie is no API token; every request checks the token again by that hash
(:meth:`Tokens.authenticate_hash`), so revoking the token ends its sessions at once.
The key is a random secret the database keeps (``flowledger_meta``), so every server on
one database accepts the others' sessions and a restart signs nobody out.

The CSRF token is an HMAC of the session value: bound to one session, nothing stored.

Signing out ends the session on the server too, not only in the browser: the value
holds when it was made (``iat``), and signing out stores the moment under
``signout:<token hash, 48 hex digits>`` in ``flowledger_meta`` (its keys hold 64); a
session of that token made before it is refused (on every server within
:data:`SIGNED_OUT_RECHECK`). So signing out ends every browser session of that token: a
cookie copied before cannot be used after.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from pydantic import Field

from flowledger.app import b64
from flowledger.app.models import Request
from flowledger.app.tokens import Caller, Role, Tokens, token_hash
from flowledger.errors import AuthenticationError, ForbiddenError
from flowledger.runtime.engine import Engine

#: The ``flowledger_meta`` key of the session signing secret.
META_KEY = "web_session_secret"
#: How long a sign-in lasts.
LIFETIME = 12 * 3600
#: The ``flowledger_meta`` key prefix of when a token's sessions were signed out.
SIGNED_OUT_KEY = "signout:"
#: Seconds a process keeps what it read of a token's sign-out (others sign out too).
SIGNED_OUT_RECHECK = 1.0


class SignIn(Request):
    token: str = Field(min_length=1, max_length=256)


class ResolveSession(Request):
    """Who holds this session value (None: no cookie), needing at least ``needs``."""

    session: str | None = Field(default=None, max_length=1024)
    needs: Role = "viewer"


class CheckCsrf(Request):
    session: str = Field(max_length=1024)
    csrf: str | None = Field(default=None, max_length=256)


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the cookie value, its CSRF token, and who it is."""

    value: str
    csrf: str
    caller: Caller
    max_age: int
    #: The hash of the token behind it (a live stream checks it again as it goes).
    credential: str


class Sessions:
    """The session operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine, tokens: Tokens) -> None:
        self._engine = engine
        self._tokens = tokens
        self._key: bytes | None = None
        #: Token hash → (when its sessions were signed out or 0, when that was read).
        self._signed_out: dict[str, tuple[float, float]] = {}

    async def sign_in(self, request: SignIn) -> Session:
        """A session for a valid token (AuthenticationError otherwise)."""
        digest = token_hash(request.token.strip())
        caller = await self._tokens.authenticate_hash(digest)
        now = time.time()
        data = {"h": digest, "iat": round(now, 3), "exp": int(now) + LIFETIME}
        payload = b64.encode(json.dumps(data).encode())
        value = f"{payload}.{b64.encode(await self._sign(payload))}"
        return Session(value, await self._csrf(value), caller, LIFETIME, digest)

    async def resolve(self, request: ResolveSession) -> Session:
        """The session behind a cookie value: AuthenticationError when it is missing,
        forged, expired or its token revoked; ForbiddenError when the role is too low."""
        value = request.session
        if not value:
            raise AuthenticationError("sign in with an API token")
        payload, _, signature = value.partition(".")
        try:
            ok = hmac.compare_digest(b64.decode(signature), await self._sign(payload))
            data = json.loads(b64.decode(payload)) if ok else None
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("h"), str):
            raise AuthenticationError("the session is not valid; sign in again")
        left = int(data.get("exp", 0)) - int(time.time())
        if left <= 0:
            raise AuthenticationError("the session expired; sign in again")
        made = data.get("iat", int(data.get("exp", 0)) - LIFETIME)  # older values: by exp
        if not isinstance(made, int | float) or made <= await self._signed_out_at(data["h"]):
            raise AuthenticationError("the session was signed out; sign in again")
        caller = await self._tokens.authenticate_hash(data["h"], request.needs)
        return Session(value, await self._csrf(value), caller, left, data["h"])

    async def sign_out(self, session: Session) -> None:
        """End ``session`` and every other session of its token made until now."""
        now = time.time()
        await self._engine.store.put_meta_value(_signed_out_key(session.credential), f"{now:.3f}")
        self._signed_out[session.credential] = (round(now, 3), time.monotonic())

    async def _signed_out_at(self, digest: str) -> float:
        now = time.monotonic()
        kept = self._signed_out.get(digest)
        if kept is not None and now - kept[1] < SIGNED_OUT_RECHECK:
            return kept[0]
        stored = await self._engine.store.meta_value(_signed_out_key(digest))
        at = float(stored) if stored else 0.0
        if len(self._signed_out) > 10_000:  # one per token in use: bounded in practice
            self._signed_out.clear()
        self._signed_out[digest] = (at, now)
        return at

    async def check_csrf(self, request: CheckCsrf) -> None:
        """ForbiddenError unless ``csrf`` is the session's CSRF token."""
        expected = await self._csrf(request.session)
        if not request.csrf or not hmac.compare_digest(request.csrf, expected):
            raise ForbiddenError("the form is stale or forged (CSRF check); reload the page")

    async def _csrf(self, value: str) -> str:
        return b64.encode(await self._sign("csrf:" + value))

    async def _sign(self, text: str) -> bytes:
        if self._key is None:
            self._key = (await self._engine.store.meta_secret(META_KEY)).encode()
        return hmac.new(self._key, text.encode(), hashlib.sha256).digest()


def _signed_out_key(digest: str) -> str:
    return SIGNED_OUT_KEY + digest[:48]

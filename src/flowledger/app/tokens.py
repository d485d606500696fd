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
token with a revoked one's name keeps that row, renamed ``<name>~revoked~<id>`` (the
audit trail stays in ``tokens list``). ``last_used_at`` is written at most
once a minute per token (a write on every request would cost more than it tells): each
process remembers when it last wrote it, so a request writes nothing in between.
A process keeps what it read of a token for :data:`RECHECK` (one second): a request
then reads nothing (the lookup was a fifth of a ``GET``'s cost). So a revocation takes
effect at once in the process that made it and within a second in every other one;
an unknown token is never remembered (a token just created works at once).

An open event stream (app.streams) must not outlive its token by more than a moment, even
when nothing happens on it. While streams are open, :meth:`Tokens.watching` reads one
number every :data:`WATCH_EVERY` second, however many streams and tokens: the token
revision (how many tokens are revoked, Store.token_revision). When it moves, or this
process revokes one, the remembered rows are dropped and :meth:`Tokens.revoked_signal`
fires: each stream checks its own token again (one read per token) and ends if it was
revoked. So a stream ends within about a second of a revocation anywhere, and sending
an event reads nothing more than a request does (the row remembered for a second).
Decision: a poll of one count, not LISTEN/NOTIFY, since SQLite has no notifications and
one small query a second per serving process costs nothing.

A token may be given an expiry (``expires_in``): from then on it is refused as a revoked
one is (401, saying when it expired), by this process's clock, and a stream open with it
ends then. ``tokens list`` shows it, and whether it has passed.

A token records who created it (``created_by``, revision 0017: ``api-token:NAME`` over
HTTP, ``cli:USER`` on the command line, as an execution's ``createdBy``); the list is
paged newest first, as every listing (app.paging).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import Field, field_validator
from typing_extensions import TypedDict

from flowledger.app.limits import page_size
from flowledger.app.models import MAX_PAGE, Request
from flowledger.app.paging import Codec, Listing, created_position, keyset_page
from flowledger.app.results import Page
from flowledger.config import Limits
from flowledger.durations import duration_at_least
from flowledger.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    shown,
)
from flowledger.logs import log_extra
from flowledger.runtime.engine import Engine
from flowledger.timeutil import iso

Role = Literal["viewer", "operator", "admin"]
#: The roles, weakest first: a role may do whatever the ones before it may.
ROLES: tuple[Role, ...] = get_args(Role)
PREFIX = "flt_"
#: ``last_used_at`` is recorded at most this often per token.
TOUCH_EVERY = timedelta(minutes=1)
#: Tokens a process remembers (their rows, their last write of ``last_used_at``).
MAX_TOUCHED = 10_000
#: Seconds a process trusts a token row it read before reading it again.
RECHECK = 1.0
#: The shortest expiry a token may be given.
MIN_LIFETIME = timedelta(seconds=1)
#: Seconds between two reads of the token revision while event streams are open.
WATCH_EVERY = 1.0

log = logging.getLogger(__name__)
#: A token's name: ASCII letters, digits, ``.``, ``_`` and ``-``, a letter or digit first.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: ``createdBy`` of what a token starts: ``api-token:NAME``.
CREATOR_PREFIX = "api-token:"


class CreateToken(Request):
    name: str = Field(min_length=1, max_length=128)
    role: Role = "viewer"
    #: Who creates it, as an execution's ``createdBy``: ``api-token:NAME``, ``cli:USER``.
    created_by: str = Field(default="python", max_length=200)
    #: How long the token works (``30d``, ``12h``, seconds); None: until revoked.
    expires_in: timedelta | None = None

    @field_validator("expires_in", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_at_least(value, MIN_LIFETIME)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        # In words: a pattern's refusal showed the regex to people.
        if not _NAME.fullmatch(name):
            raise ValueError(
                "must start with a letter or digit and hold only letters, digits, '.', '_' "
                f"and '-' (no spaces); {shown(name)} does not"
            )
        return name


class ListTokens(Request):
    """Tokens newest first, revoked and expired ones too; ``cursor`` is a page's
    ``nextCursor``."""

    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = None


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
    #: When it stops working (null: never), and whether that time has passed.
    expiresAt: str | None
    expired: bool
    #: Who created it (``api-token:NAME``, ``cli:USER``); null: made before that was
    #: recorded (revision 0017).
    createdBy: str | None


class CreatedToken(TypedDict):
    name: str
    role: Role
    #: The secret: shown this once, never stored.
    token: str
    expiresAt: str | None


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


class Tokens(Listing):
    """The token operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine, codec: Codec, limits: Limits | None = None) -> None:
        super().__init__(engine, codec, limits)
        #: When this process last recorded each token's use (monotonic seconds).
        self._touched: dict[str, float] = {}
        #: Token rows read lately, by hash: (the row, when it was read; monotonic).
        self._known: dict[str, tuple[dict[str, Any], float]] = {}
        #: Reads under way, by hash: the requests that come meanwhile await the same one
        #: (when a row goes stale, every request in flight with that token needed it).
        self._reading: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        #: Bumped by each revoke: a read begun before one must not be kept.
        self._revokes = 0
        #: Set when a token may have been revoked (then replaced by a new one).
        self._revoked = asyncio.Event()
        #: Streams watching the revision, its last value read, and the task reading it.
        self._watchers = 0
        self._revision: int | None = None
        self._watch: asyncio.Task[None] | None = None

    async def create(self, request: CreateToken) -> CreatedToken:
        """A new token; ConflictError when a token of that name is in use."""
        token = PREFIX + secrets.token_urlsafe(32)
        now = await self._engine.store.db_now()
        expires = None if request.expires_in is None else now + request.expires_in
        row = {
            "id": str(uuid.uuid4()),
            "name": request.name,
            "role": request.role,
            "secret_hash": token_hash(token),
            "created_at": now,
            "expires_at": expires,
            "created_by": request.created_by,
        }
        if not await self._engine.store.create_api_token(row):
            raise ConflictError(
                f"a token named {request.name!r} exists; revoke it first or pick another name"
            )
        expires_at = iso(expires) if expires is not None else None
        return {"name": request.name, "role": request.role, "token": token, "expiresAt": expires_at}

    async def list(self, request: ListTokens) -> Page[TokenDocument]:
        """One page of tokens, newest first, revoked and expired ones too (never their
        secrets); keyset pagination, as every listing (app.paging)."""
        rows, cursor = await keyset_page(
            await self._codec(),
            "tokens",
            {},
            request.cursor,
            page_size(request, self._limits.max_page),
            self._engine.store.list_api_tokens,
            created_position,
        )
        now = self._engine.clock.now()
        return Page[TokenDocument](items=[_document(r, now) for r in rows], next_cursor=cursor)

    async def revoke(self, request: RevokeToken) -> TokenDocument:
        """Revoke a token at once (revoking a revoked token changes nothing)."""
        row = await self._engine.store.revoke_api_token(request.name)
        self._forget()  # at once here; other processes within RECHECK (WATCH_EVERY: streams)
        if row is None:
            raise NotFoundError(f"there is no token named {request.name!r}")
        return _document(row, self._engine.clock.now())

    def _forget(self) -> None:
        """A token may be revoked: read every token again, and tell the streams."""
        self._known.clear()
        self._revokes += 1
        fired, self._revoked = self._revoked, asyncio.Event()
        fired.set()

    def revoked_signal(self) -> asyncio.Event:
        """Set once a token may have been revoked since this was asked: by this process at
        once, by another within WATCH_EVERY while someone is :meth:`watching`."""
        return self._revoked

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Watch the token revision while inside (an open event stream)."""
        self._watchers += 1
        if self._watch is None or self._watch.done():
            self._watch = asyncio.ensure_future(self._read_revisions())
        try:
            yield
        finally:
            self._watchers -= 1

    async def _read_revisions(self) -> None:
        """Read the revision every WATCH_EVERY seconds while anyone watches. The first
        read of all fires too: a revocation between a stream's check and that read would
        be in the number it starts from."""
        while self._watchers > 0:
            try:
                revision = await self._engine.store.token_revision()
            except Exception as exc:  # the database away for a moment: the next tick asks again
                log.warning(
                    "cannot read the token revision: %s", exc, extra=log_extra("tokens.watch")
                )
            else:
                if revision != self._revision:
                    self._forget()
                self._revision = revision
            await asyncio.sleep(WATCH_EVERY)

    async def seconds_left(self, digest: str) -> float | None:
        """How long the token with this hash works yet (None: until revoked, or unknown)."""
        row = await self._row(digest)
        expires: datetime | None = row.get("expires_at") if row is not None else None
        if expires is None:
            return None
        return (expires - self._engine.clock.now()).total_seconds()

    async def close(self) -> None:
        """Stop watching the revision (the application closes)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _row(self, digest: str) -> dict[str, Any] | None:
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and now - known[1] < RECHECK:
            return known[0]
        reading = self._reading.get(digest)
        if reading is None:
            reading = asyncio.ensure_future(self._read(digest, now))
            self._reading[digest] = reading
            reading.add_done_callback(lambda _: self._reading.pop(digest, None))
        return await asyncio.shield(reading)

    async def _read(self, digest: str, now: float) -> dict[str, Any] | None:
        revokes = self._revokes
        row = await self._engine.store.find_api_token(digest)
        if row is None or revokes != self._revokes:
            self._known.pop(digest, None)
            return row
        if len(self._known) > MAX_TOUCHED:
            self._known.clear()
        self._known[digest] = (row, now)
        return row

    async def _touch(self, token_id: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(token_id, -math.inf) < TOUCH_EVERY.total_seconds():
            return
        if len(self._touched) > MAX_TOUCHED:
            self._touched.clear()  # bounded: forgetting costs one write per token
        self._touched[token_id] = now
        await self._engine.store.touch_api_token(token_id, TOUCH_EVERY)

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
        row = await self._row(digest)
        if (
            row is None
            or not hmac.compare_digest(str(row["secret_hash"]), digest)
            or row["revoked_at"] is not None
        ):
            raise AuthenticationError("the API token is not valid (unknown or revoked)")
        expires = row.get("expires_at")
        if expires is not None and expires <= self._engine.clock.now():
            raise AuthenticationError(
                f"the API token expired at {iso(expires)}; an admin creates a new one "
                "(flowledger tokens create NAME --expires-in 30d)"
            )
        role: Role = row["role"]
        if not allows(role, needs):
            raise ForbiddenError(
                f"token {row['name']!r} has role {role}; this needs {needs} or higher"
            )
        await self._touch(str(row["id"]))
        return {"name": row["name"], "role": role, "createdBy": CREATOR_PREFIX + row["name"]}


def _document(row: dict[str, Any], now: datetime) -> TokenDocument:
    def when(key: str) -> str | None:
        return iso(row[key]) if row[key] is not None else None

    expires = row["expires_at"]
    return {
        "name": row["name"],
        "role": row["role"],
        "createdAt": iso(row["created_at"]),
        "lastUsedAt": when("last_used_at"),
        "revokedAt": when("revoked_at"),
        "expiresAt": when("expires_at"),
        "expired": expires is not None and expires <= now,
        "createdBy": row["created_by"],
    }

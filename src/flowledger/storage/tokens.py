"""Storage of the API tokens: abstract verbs, and their SQL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from flowledger.storage.schema_tokens import api_tokens
from flowledger.storage.sqlpart import SQLPart, older_than, point_read, reads, writes
from flowledger.types import Row


class TokenStore(ABC):
    """What the application layer needs from a database for API tokens."""

    @abstractmethod
    async def create_api_token(self, row: Row) -> bool:
        """Store a token; False when a token of that name exists and is not revoked (a
        revoked one of that name is kept, renamed ``<name>~revoked~<id>``)."""

    @abstractmethod
    async def list_api_tokens(
        self, limit: int | None = None, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        """Tokens (revoked ones too), newest first: all, or ``limit`` after ``before``
        (created_at, id)."""

    @abstractmethod
    async def revoke_api_token(self, name: str) -> Row | None:
        """Mark the token revoked (kept as it is when it already was); None: no such name."""

    @abstractmethod
    async def find_api_token(self, secret_hash: str) -> Row | None:
        """The token, revoked or not, whose secret has this hash."""

    @abstractmethod
    async def touch_api_token(self, token_id: str, every: timedelta) -> None:
        """Record a use, unless one was recorded less than ``every`` ago (a write per
        request would cost more than it tells)."""

    @abstractmethod
    async def count_api_tokens(self) -> int:
        """How many tokens are not revoked."""

    @abstractmethod
    async def token_revision(self) -> int:
        """A number that grows with every revocation, on any process: how many tokens are
        revoked (a revoked row is never deleted nor un-revoked). Streams open with a token
        watch it (app.tokens) rather than read their token on every event."""


class SQLTokenStore(SQLPart, TokenStore):
    """Shared SQL for SQLite and PostgreSQL; SQLStore provides the connection and clock."""

    @writes
    def create_api_token(self, row: Row) -> bool:
        t = api_tokens
        try:
            with self.conn.begin():
                self.conn.execute(insert(t), [row])
            return True
        except IntegrityError:
            pass
        with self.conn.begin():
            revoked = self.conn.execute(
                select(t.c.id).where(and_(t.c.name == row["name"], t.c.revoked_at.is_not(None)))
            ).first()
            if revoked is None:
                return False  # the name is in use
            # The revoked token keeps its row, under a name no new token can take (names
            # never hold "~"), so `tokens list` still shows it and when it was revoked.
            kept = f"{row['name'][:100]}~revoked~{revoked[0][:8]}"
            self.conn.execute(update(t).where(t.c.id == revoked[0]).values(name=kept))
            self.conn.execute(insert(t), [row])
            return True

    @reads
    def list_api_tokens(
        self, limit: int | None = None, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        t = api_tokens
        query = select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(older_than(t.c.created_at, t.c.id, before))
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(query)]

    @writes
    def revoke_api_token(self, name: str) -> Row | None:
        t = api_tokens
        stmt = (
            update(t)
            .where(and_(t.c.name == name, t.c.revoked_at.is_(None)))
            .values(revoked_at=self._sql_now())
        )
        with self.conn.begin():
            self.conn.execute(stmt)
            row = self.conn.execute(select(t).where(t.c.name == name)).first()
        return dict(row._mapping) if row else None

    @point_read  # by its unique hash: one index probe
    def find_api_token(self, secret_hash: str) -> Row | None:
        t = api_tokens
        with self.reading():
            row = self.conn.execute(select(t).where(t.c.secret_hash == secret_hash)).first()
        return dict(row._mapping) if row else None

    @writes
    def touch_api_token(self, token_id: str, every: timedelta) -> None:
        t = api_tokens
        stale = or_(t.c.last_used_at.is_(None), t.c.last_used_at < self._sql_now(-every))
        stmt = update(t).where(and_(t.c.id == token_id, stale)).values(last_used_at=self._sql_now())
        with self.conn.begin():
            self.conn.execute(stmt)

    @reads
    def token_revision(self) -> int:
        t = api_tokens
        stmt = select(func.count()).select_from(t).where(t.c.revoked_at.is_not(None))
        with self.reading():
            return int(self.conn.execute(stmt).scalar_one())

    @reads
    def count_api_tokens(self) -> int:
        t = api_tokens
        stmt = select(func.count()).select_from(t).where(t.c.revoked_at.is_(None))
        with self.reading():
            return int(self.conn.execute(stmt).scalar_one())

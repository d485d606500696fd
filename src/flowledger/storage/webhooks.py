"""Storage of outbound webhooks: subscriptions and their deliveries (the outbox).

Deliveries are inserted by the commit that makes the status change they report
(storage.outbox); here they are listed, claimed and finished.

Claiming: a claim moves ``next_attempt_at`` past the attempt's lease and counts the
attempt, in one transaction: on PostgreSQL the candidates are read ``FOR UPDATE SKIP
LOCKED`` (two workers never wait on, nor win, the same row); SQLite's write lock
serializes claims. The UPDATE checks the claimable condition again, so the compare-and-
set is the guard whatever the isolation. Finishing is fenced on (claimer, attempt): a
worker whose lease lapsed, and whose delivery another worker took, records nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, delete, insert, select, update

from flowledger.storage.schema_webhooks import deliveries, subscriptions
from flowledger.storage.sqlpart import SQLPart, older_than, reads, writes
from flowledger.types import Row


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this worker may attempt now, with what sending it needs."""

    id: str
    subscription_id: str
    url: str
    secret: str
    payload: str
    #: This attempt's number (1 for the first); the fence of :meth:`finish_delivery`.
    attempt: int
    created_at: datetime


class WebhookStore(ABC):
    """What the application and the workers need from a database for webhooks."""

    @abstractmethod
    async def create_subscription(self, row: Row) -> None: ...

    @abstractmethod
    async def list_subscriptions(
        self, limit: int | None = None, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        """Subscriptions, newest first: all, or ``limit`` after ``before`` (created_at, id)."""

    @abstractmethod
    async def get_subscription(self, subscription_id: str) -> Row | None: ...

    @abstractmethod
    async def delete_subscription(self, subscription_id: str) -> bool:
        """Delete it and its deliveries (sent or not); False when there was none."""

    @abstractmethod
    async def list_deliveries(
        self, subscription_id: str, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        """A subscription's deliveries, newest first; keyset ``before`` (created_at, id)."""

    @abstractmethod
    async def claim_deliveries(
        self, owner: str, limit: int, lease: timedelta
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries for one attempt each, for ``lease``."""

    @abstractmethod
    async def finish_delivery(
        self,
        claimed: ClaimedDelivery,
        owner: str,
        *,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        retry_in: timedelta | None,
    ) -> bool:
        """Record an attempt: delivered, or to retry in ``retry_in`` (None: give up, the
        delivery is ``failed``). False when the claim was lost meanwhile (nothing written)."""


class SQLWebhookStore(SQLPart, WebhookStore):
    """Shared SQL for SQLite and PostgreSQL; SQLStore provides the connection and clock."""

    def _claim_query(self, query: Select[tuple[str]]) -> Select[tuple[str]]:
        """The candidate read of a claim; PostgreSQL skips rows other claimers locked."""
        return query

    @writes
    def create_subscription(self, row: Row) -> None:
        with self.conn.begin():
            self.conn.execute(insert(subscriptions), [row])

    @reads
    def list_subscriptions(
        self, limit: int | None = None, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        t = subscriptions
        query = select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(older_than(t.c.created_at, t.c.id, before))
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(query)]

    @reads
    def get_subscription(self, subscription_id: str) -> Row | None:
        t = subscriptions
        with self.reading():
            found = self.conn.execute(select(t).where(t.c.id == subscription_id)).first()
        return dict(found._mapping) if found else None

    @writes
    def delete_subscription(self, subscription_id: str) -> bool:
        with self.conn.begin():
            self.conn.execute(
                delete(deliveries).where(deliveries.c.subscription_id == subscription_id)
            )
            gone = self.conn.execute(
                delete(subscriptions).where(subscriptions.c.id == subscription_id)
            )
            return gone.rowcount == 1

    @reads
    def list_deliveries(
        self, subscription_id: str, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        t = deliveries
        query = select(t).where(t.c.subscription_id == subscription_id)
        if before is not None:
            query = query.where(older_than(t.c.created_at, t.c.id, before))
        query = query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(query)]

    @writes
    def claim_deliveries(self, owner: str, limit: int, lease: timedelta) -> list[ClaimedDelivery]:
        t, s = deliveries, subscriptions
        due = and_(t.c.status == "pending", t.c.next_attempt_at <= self._sql_now())
        with self.conn.begin():
            candidates = select(t.c.id).where(due).order_by(t.c.next_attempt_at).limit(limit)
            ids = [r[0] for r in self.conn.execute(self._claim_query(candidates))]
            if not ids:
                return []
            won = self.conn.execute(
                update(t)
                .where(and_(t.c.id.in_(ids), due))
                .values(
                    attempts=t.c.attempts + 1,
                    claimed_by=owner,
                    next_attempt_at=self._sql_now(lease),
                    last_attempt_at=self._sql_now(),
                )
                .returning(t.c.id)
            )
            claimed = [r[0] for r in won]
            if not claimed:
                return []
            rows = self.conn.execute(
                select(
                    t.c.id,
                    t.c.subscription_id,
                    s.c.url,
                    s.c.secret,
                    t.c.payload,
                    t.c.attempts,
                    t.c.created_at,
                )
                .join(s, s.c.id == t.c.subscription_id)
                .where(t.c.id.in_(claimed))
            )
            return [ClaimedDelivery(*row) for row in rows]

    @writes
    def finish_delivery(
        self,
        claimed: ClaimedDelivery,
        owner: str,
        *,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        retry_in: timedelta | None,
    ) -> bool:
        t = deliveries
        values: Row = {"last_status_code": status_code, "last_error": _short(error)}
        if delivered:
            values.update(status="delivered", delivered_at=self._sql_now(), claimed_by=None)
        elif retry_in is None:
            values.update(status="failed", claimed_by=None)
        else:
            values.update(next_attempt_at=self._sql_now(retry_in), claimed_by=None)
        fence = and_(
            t.c.id == claimed.id,
            t.c.status == "pending",
            t.c.claimed_by == owner,
            t.c.attempts == claimed.attempt,
        )
        with self.conn.begin():
            return self.conn.execute(update(t).where(fence).values(**values)).rowcount == 1


def _short(text: str | None, limit: int = 500) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"

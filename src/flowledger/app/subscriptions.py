"""Outbound webhooks: subscriptions and their deliveries (SPEC §6, ``/subscriptions``).

A subscription is a URL, the events it wants (``execution.completed``, ``.failed``,
``.cancelled``, ``.awaiting_input``) and optionally one workflow. Its signing secret
(``whsec_…``, 32 random bytes) is returned once, by :meth:`Subscriptions.create`; it is
kept in the database (the sender needs it to sign) but no read shows it again.

Each reported status change is written to the outbox in the commit that makes it
(storage.outbox), one delivery per matching subscription; the workers' delivery duty
(worker.deliveries) sends it as a signed Standard Webhook and retries it. Subscribing
reports the changes committed from then on, never earlier ones. Deleting a subscription
deletes its deliveries, sent or not.

URLs: ``http``/``https`` only. A literal address the egress policy refuses
(``FLOWLEDGER_HTTP_ALLOW``) is refused here already; host names are checked at every
attempt, by the engine's guarded client (DNS may change).
"""

from __future__ import annotations

import base64
import builtins
import ipaddress
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal, cast
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from typing_extensions import TypedDict

from flowledger.app.cursors import CursorCodec
from flowledger.app.limits import page_size
from flowledger.app.models import MAX_PAGE, Request
from flowledger.app.paging import Position, created_position, keyset_page
from flowledger.app.results import Page
from flowledger.codec import origin_only, url_hidden
from flowledger.config import Limits
from flowledger.errors import InvalidInputError, NotFoundError
from flowledger.runtime.engine import Engine
from flowledger.timeutil import iso
from flowledger.types import ExecutionStatusName, Row

Event = Literal[
    "execution.completed",
    "execution.failed",
    "execution.cancelled",
    "execution.awaiting_input",
]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class CreateSubscription(Request):
    url: str = Field(min_length=1, max_length=2000)
    events: list[Event] = Field(min_length=1, max_length=4)
    #: Only executions of this workflow (by name); None: every workflow.
    workflow: str | None = Field(default=None, min_length=1, max_length=128)
    description: str = Field(default="", max_length=500)
    created_by: str = "python"

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the url must be an http:// or https:// URL with a host")
        return url


#: Who reads a subscription: an admin sees its whole URL; anyone else sees only its origin,
#: since a webhook URL is often a credential itself (a chat service's incoming hook).
Reader = Literal["viewer", "operator", "admin"]


class GetSubscription(Request):
    id: str = Field(min_length=1, max_length=40)
    reader: Reader = "admin"


class DeleteSubscription(Request):
    id: str = Field(min_length=1, max_length=40)


class ListSubscriptions(Request):
    """Subscriptions newest first; ``cursor`` is a page's ``nextCursor``."""

    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = None
    reader: Reader = "admin"


class ListDeliveries(Request):
    """A subscription's deliveries, newest first; ``cursor`` is a page's ``nextCursor``."""

    subscription_id: str = Field(min_length=1, max_length=40)
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = None
    reader: Reader = "admin"


class SubscriptionDocument(TypedDict):
    id: str
    url: str
    events: list[str]
    workflow: str | None
    description: str
    createdBy: str
    createdAt: str


class CreatedSubscription(SubscriptionDocument):
    #: The signing secret: shown this once.
    secret: str
    #: What is taken but likely a mistake (a workflow of no known name), one line each.
    warnings: list[str]


class DeliveryData(TypedDict):
    """The execution a delivery reports (runtime.lifecycle fills it in)."""

    executionId: str
    #: The ``seq`` of the event in the execution's history that records this change
    #: (``GET /executions/{id}/events``): it grows with each of the execution's
    #: deliveries, and a retried delivery carries its first attempt's.
    seq: int
    workflowName: str
    workflowVersion: int
    correlationId: str | None
    runtimeStatus: ExecutionStatusName


class DeliveryPayload(TypedDict):
    """The body each delivery POSTs, signed as a Standard Webhook (worker.deliveries)."""

    type: Event
    #: When the status changed (ISO 8601, UTC). Deliveries are not ordered: a receiver
    #: orders one execution's by ``data.seq``.
    timestamp: str
    data: DeliveryData


class DeliveryDocument(TypedDict):
    #: Also the ``webhook-id`` header, the same on every attempt.
    id: str
    subscriptionId: str
    event: str
    executionId: str
    status: DeliveryStatus
    attempts: int
    lastStatusCode: int | None
    lastError: str | None
    lastAttemptAt: str | None
    #: When the next attempt is due (pending deliveries only).
    nextAttemptAt: str | None
    createdAt: str
    deliveredAt: str | None


class Subscriptions:
    """The subscription operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(
        self,
        engine: Engine,
        codec: Callable[[], Awaitable[CursorCodec]],
        limits: Limits,
    ) -> None:
        self._engine = engine
        self._codec = codec
        self._limits = limits

    async def create(self, request: CreateSubscription) -> CreatedSubscription:
        self._check_egress(request.url)
        row = {
            "id": f"sub_{uuid.uuid4().hex}",
            "url": request.url,
            "events": json.dumps(sorted(set(request.events))),
            "workflow_name": request.workflow,
            "secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
            "description": request.description,
            "created_by": request.created_by,
            "created_at": self._engine.clock.now(),
        }
        await self._engine.store.create_subscription(row)
        warnings = await self._warnings(request)
        created = {**_subscription(row), "secret": row["secret"], "warnings": warnings}
        return cast(CreatedSubscription, created)

    async def list(self) -> builtins.list[SubscriptionDocument]:
        """Every subscription, newest first."""
        return [_subscription(row) for row in await self._engine.store.list_subscriptions()]

    async def page(self, request: ListSubscriptions) -> Page[SubscriptionDocument]:
        """One page of subscriptions, newest first (keyset: stable while others insert)."""
        rows, cursor = await keyset_page(
            await self._codec(),
            "subscriptions",
            {},
            request.cursor,
            page_size(request, self._limits.max_page),
            self._engine.store.list_subscriptions,
            created_position,
        )
        return Page[SubscriptionDocument](
            items=[_subscription(r, request.reader) for r in rows], next_cursor=cursor
        )

    async def get(self, request: GetSubscription) -> SubscriptionDocument:
        row = await self._engine.store.get_subscription(request.id)
        if row is None:
            raise NotFoundError(f"subscription {request.id} does not exist")
        return _subscription(row, request.reader)

    async def delete(self, request: DeleteSubscription) -> None:
        if not await self._engine.store.delete_subscription(request.id):
            raise NotFoundError(f"subscription {request.id} does not exist")

    async def deliveries(self, request: ListDeliveries) -> Page[DeliveryDocument]:
        subscription = request.subscription_id
        row = await self._engine.store.get_subscription(subscription)
        if row is None:
            raise NotFoundError(f"subscription {subscription} does not exist")
        url = str(row["url"])
        hidden = None if request.reader == "admin" else url

        def fetch(limit: int, before: Position | None) -> Awaitable[builtins.list[Row]]:
            return self._engine.store.list_deliveries(subscription, limit, before)

        page, cursor = await keyset_page(
            await self._codec(),
            "deliveries",
            {"subscription": subscription},
            request.cursor,
            page_size(request, self._limits.max_page),
            fetch,
            created_position,
        )
        items = [_delivery(r, hidden) for r in page]
        return Page[DeliveryDocument](items=items, next_cursor=cursor)

    async def _warnings(self, request: CreateSubscription) -> builtins.list[str]:
        """A workflow name nothing has stored (pushed or run) is likely a typo, but not
        refused: the workflow may be pushed after its subscription."""
        name = request.workflow
        if name is None or await self._engine.store.workflow_version_id(name) is not None:
            return []
        return [
            f"workflow: no workflow named {name!r} exists yet; the subscription reports "
            "its executions once it is pushed"
        ]

    def _check_egress(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: checked when it is resolved, at every attempt
        problem = self._engine.settings.http_allow.problem(host, address)
        if problem is not None:
            raise InvalidInputError(
                f"the egress policy refuses {url}: {problem} (FLOWLEDGER_HTTP_ALLOW can allow it)",
                ("url",),
            )


def _subscription(row: Row, reader: Reader = "admin") -> SubscriptionDocument:
    return {
        "id": row["id"],
        "url": row["url"] if reader == "admin" else origin_only(row["url"]),
        "events": json.loads(row["events"]),
        "workflow": row["workflow_name"],
        "description": row["description"],
        "createdBy": row["created_by"],
        "createdAt": iso(row["created_at"]),
    }


def _delivery(row: Row, hidden: str | None = None) -> DeliveryDocument:
    """A delivery; ``hidden``: the subscription's URL when the reader sees only its origin
    (codec.origin_only), which then replaces it where an error quotes it."""
    pending = row["status"] == "pending"

    def when(value: datetime | None) -> str | None:
        return iso(value) if value is not None else None

    return {
        "id": row["id"],
        "subscriptionId": row["subscription_id"],
        "event": row["event"],
        "executionId": row["execution_id"],
        "status": row["status"],
        "attempts": int(row["attempts"]),
        "lastStatusCode": row["last_status_code"],
        "lastError": _last_error(row["last_error"], hidden),
        "lastAttemptAt": when(row["last_attempt_at"]),
        "nextAttemptAt": when(row["next_attempt_at"]) if pending else None,
        "createdAt": iso(row["created_at"]),
        "deliveredAt": when(row["delivered_at"]),
    }


def _last_error(error: str | None, hidden: str | None) -> str | None:
    return error if error is None or hidden is None else url_hidden(str(error), hidden)

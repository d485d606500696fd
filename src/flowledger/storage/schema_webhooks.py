"""Tables of the service face's webhooks (revision 0003), on the shared metadata.

Webhook triggers coming in need no table: a request's ``webhook-id`` (or
``Idempotency-Key``) becomes the execution's ``trigger_key``, whose unique index makes a
replay find the execution the first request started.

Notifications going out: ``subscriptions`` (a URL, the events it wants, an optional
workflow filter, its signing secret) and ``deliveries``, the outbox. A delivery row is
written in the same transaction as the status change it reports (storage.writes), one
per matching subscription, and the delivery duty (worker.deliveries) sends it.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from flowledger.storage.schema import UTCDateTime, metadata

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", String(2000), nullable=False),
    #: The events wanted, as a JSON list of names (matched with LIKE '%"name"%').
    Column("events", String(400), nullable=False),
    #: Only executions of this workflow; None: every workflow.
    Column("workflow_name", String(128)),
    #: The Standard Webhooks signing secret (``whsec_…``). Stored as it is: the sender
    #: needs the secret itself to sign, so a hash would not do.
    Column("secret", String(100), nullable=False),
    Column("description", String(500), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    #: Also the ``webhook-id`` header (the same on every attempt):
    #: ``<message id>.<subscription id>``.
    Column("id", String(120), primary_key=True),
    Column("subscription_id", String(40), nullable=False),
    Column("event", String(64), nullable=False),
    Column("execution_id", String(36), nullable=False),
    #: The JSON body sent, fixed when the event happened.
    Column("payload", Text, nullable=False),
    #: ``pending`` (to send, or being sent), ``delivered``, ``failed`` (given up).
    Column("status", String(16), nullable=False),
    #: Attempts started so far (a claim counts one, even if its worker dies).
    Column("attempts", Integer, nullable=False),
    #: When the next attempt is due. A claim moves it past the attempt's lease, so a
    #: worker that dies mid-attempt hands the delivery back when the lease lapses.
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(200)),
    Column("last_attempt_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", String(500)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_subscription", "subscription_id", "created_at", "id"),
    # Pruning deletes an execution's sent deliveries with it (migration 0008).
    Index("ix_deliveries_execution", "execution_id"),
)

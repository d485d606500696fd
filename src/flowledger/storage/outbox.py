"""The outbox insert: a status change becomes one delivery per matching subscription.

Written by the commit of the round that makes the change (storage.writes), so the state
change and its deliveries land together or not at all. Matching happens in SQL, inside
that transaction (``INSERT … SELECT FROM subscriptions``): the subscriptions that exist
when the change commits are the ones notified, and the runtime keeps no cache of them
that another process could make stale. With no subscriptions the statement finds
nothing: one scan of an empty table per reported status change (an execution's end, or
its wait for input), never per step. Like the rest of the commit hot path
(storage.fastpath) the SQL is rendered once per dialect and runs on the driver's cursor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Dialect

from flowledger.storage.fastpath import PreparedWrite, placeholder, timestamp_processor
from flowledger.storage.schema_webhooks import deliveries, subscriptions
from flowledger.types import Row

#: The values of one notification, in the order the SQL's placeholders want them.
_PARAMS = ("message_id", "event", "execution_id", "payload", "at", "at", "pattern", "workflow")


def prepare_outbox(dialect: Dialect) -> PreparedWrite:
    quote = dialect.identifier_preparer.quote
    mark = placeholder(dialect)
    d, s = quote(deliveries.name), quote(subscriptions.name)
    columns = ("id", "subscription_id", "event", "execution_id", "payload", "status",
               "attempts", "next_attempt_at", "created_at")  # fmt: skip
    sid = f"s.{quote('id')}"
    sql = (
        f"INSERT INTO {d} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - identifiers from our schema, values bound
        f"SELECT {mark} || '.' || {sid}, {sid}, {mark}, {mark}, {mark}, 'pending', 0, "
        f"{mark}, {mark} FROM {s} s WHERE s.{quote('events')} LIKE {mark} AND "
        f"(s.{quote('workflow_name')} IS NULL OR s.{quote('workflow_name')} = {mark})"
    )
    # The stored form as every fast-path write makes it (on SQLite the text itself: the
    # column type's processor leaves a datetime that sqlite3's default adapter, deprecated
    # since Python 3.12, would turn into text).
    when = timestamp_processor(dialect)
    processors = [when if name == "at" else None for name in _PARAMS]
    return PreparedWrite(sql, _PARAMS, processors)


def outbox_params(notification: Row) -> dict[str, Any]:
    """What :func:`prepare_outbox`'s statement binds for one notification row."""
    return {
        "message_id": notification["message_id"],
        "event": notification["event"],
        "execution_id": notification["execution_id"],
        "payload": notification["payload"],
        "at": notification["at"],
        "pattern": f'%"{notification["event"]}"%',
        "workflow": notification["workflow_name"],
    }

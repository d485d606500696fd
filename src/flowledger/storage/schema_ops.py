"""Tables of the operations part (revision 0004): step logs, on the shared metadata.

(Revision 0004 also adds ``workflows.disabled_at``, declared with its table in schema.py.)
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from flowledger.storage.schema import UTCDateTime, metadata

#: What step handlers logged through ``ctx.logger`` (at or above the configured level),
#: one row per line, written in the commit that records the attempt's result. ``id``
#: grows with every commit, so ``id > last seen`` follows one execution's lines in order.
step_logs = Table(
    "step_logs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("execution_id", String(36), nullable=False),
    Column("step_execution_id", String(36), nullable=False),
    Column("step_id", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    #: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL``.
    Column("level", String(8), nullable=False),
    #: The line as a JSON string, secrets redacted (the codec that redacts step outputs).
    Column("message", Text, nullable=False),
    Index("ix_step_logs_execution", "execution_id", "id"),
)

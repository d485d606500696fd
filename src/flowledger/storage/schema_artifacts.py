"""Tables of the artifacts part of the workflow model (on the shared metadata of schema.py)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from flowledger.storage.schema import UTCDateTime, metadata

#: Files that steps saved, and step outputs too large for the data store. The bytes live
#: under the artifacts directory (``<root>/<execution id>/<id>``); a row is inserted only
#: after its file is complete on disk, so a row never names a missing file.
artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("execution_id", String(36), nullable=False),
    Column("step_execution_id", String(36)),
    Column("step_id", String(128)),
    #: Sanitized: no path separators, never used to name the file on disk.
    Column("name", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    #: ``saved`` (a step saved it) or ``output`` (a step's output over the size budget).
    Column("kind", String(16), nullable=False),
    Index("ix_artifacts_execution", "execution_id", "created_at"),
)

"""Tables of the jobs part of the workflow model (on the shared metadata of schema.py)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from flowledger.storage.schema import UTCDateTime, metadata

#: A job run: several workflows run in order; its executions point back by ``job_run_id``.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    #: Kept current by whoever advances the run; final once terminal.
    Column("status", String(32), nullable=False),
    Column("continue_on_failure", Boolean, nullable=False),
    #: JSON list, one entry per workflow: its pinned version, name and input.
    Column("items", Text, nullable=False),
    Column("format_version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("created_by", String(200), nullable=False),
    #: The process advancing the run (a foreground `jobs run`, or a worker for a moment).
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime),
    #: A client's Idempotency-Key (``POST /job-runs``): a job run is created once per key.
    Column("idempotency_key", String(200)),
    Index("ix_job_runs_status", "status"),
    Index("ix_job_runs_created", "created_at"),
    Index("uq_job_runs_idempotency_key", "idempotency_key", unique=True),
)

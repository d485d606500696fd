"""Tables of the schedules part of the workflow model (on the shared metadata of schema.py)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, text

from flowledger.storage.schema import UTCDateTime, metadata

#: How far each schedule trigger of a pushed workflow has fired, keyed like its ticks'
#: trigger keys: (workflow name, position in ``triggers``). ``cron`` and ``timezone`` are
#: what ``last_tick`` was computed for: a pushed edit of either starts the count afresh.
schedule_states = Table(
    "schedule_states",
    metadata,
    Column("workflow_name", String(128), primary_key=True),
    Column("trigger_index", Integer, primary_key=True),
    Column("cron", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    #: The newest tick dealt with (fired, or skipped by the catch-up policy).
    Column("last_tick", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    #: Ticks ``overlap: skip`` left unstarted (an earlier tick's execution still ran), and
    #: the newest of them: what ``workflows show`` says of a schedule that is skipping.
    Column("skipped_ticks", Integer, nullable=False, server_default=text("0")),
    Column("last_skipped_tick", UTCDateTime),
)

"""Tables of the schedules part of the workflow model (on the shared metadata of schema.py)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, PrimaryKeyConstraint, String, Table, text

from flowledger.storage.schema import UTCDateTime, metadata

#: How far each schedule trigger of a pushed workflow has fired, keyed like its ticks'
#: trigger keys: (workflow name, the trigger's ``schedule_id``: its cron, time zone and
#: input, so a push that moves triggers in the list moves no progress; migration 0016
#: replaced the position, ``trigger_index``). ``cron`` and ``timezone`` are what
#: ``last_tick`` was computed for.
schedule_states = Table(
    "schedule_states",
    metadata,
    Column("workflow_name", String(128), nullable=False),
    Column("trigger_id", String(64), nullable=False),
    Column("cron", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    #: The newest tick dealt with (fired, or skipped by the catch-up policy).
    Column("last_tick", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    #: Ticks ``overlap: skip`` left unstarted (an earlier tick's execution still ran), and
    #: the newest of them: what ``workflows show`` says of a schedule that is skipping.
    Column("skipped_ticks", Integer, nullable=False, server_default=text("0")),
    Column("last_skipped_tick", UTCDateTime),
    # Named: migration 0016 built the table under another name first (PostgreSQL would
    # have kept that name's default, schedule_states_new_pkey).
    PrimaryKeyConstraint("workflow_name", "trigger_id", name="pk_schedule_states"),
)

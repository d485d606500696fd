"""Revision 0013: ``schedule_states.skipped_ticks`` and ``last_skipped_tick``, the ticks a
schedule's ``overlap: skip`` left unstarted because an earlier one still ran, so
``workflows show`` and the API can say a schedule is skipping, not only the worker's log
(frozen copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    with op.batch_alter_table("schedule_states") as batch:
        batch.add_column(
            sa.Column("skipped_ticks", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("last_skipped_tick", sa.DateTime(timezone=True)))

"""Revision 0010: ``workflow_versions.source``, the text a version was pushed from, so
people see their own definition (comments, key order) rather than its re-serialised
document (frozen copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    with op.batch_alter_table("workflow_versions") as batch:
        batch.add_column(sa.Column("source", sa.Text))

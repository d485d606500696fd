"""Revision 0017: ``api_tokens.created_by``, who created a token (``api-token:NAME`` over
HTTP, ``cli:USER`` on the command line); null for every token made before, whose creator
was never recorded (frozen copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("created_by", sa.String(200)))

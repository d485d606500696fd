"""Revision 0015: ``api_tokens.expires_at``, when a token stops working (``tokens create
--expires-in 30d``); null, as for every token made before, never (frozen copy; never
import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True)))

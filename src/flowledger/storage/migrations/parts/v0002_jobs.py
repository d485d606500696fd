"""Revision 0002, jobs tables (frozen copy; never import schema.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op  # noqa: F401

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    pass

"""Who created an API token.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0017_token_creator

revision = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0017_token_creator.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")

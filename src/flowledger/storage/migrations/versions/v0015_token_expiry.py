"""An API token's expiry.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0015_token_expiry

revision = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0015_token_expiry.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")

"""The service face: API tokens, webhook receipts, subscriptions and their deliveries.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0003_tokens, v0003_webhooks

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0003_tokens.upgrade()
    v0003_webhooks.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")

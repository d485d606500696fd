"""Alembic's environment: migrate on the connection and transaction flowledger hands over."""

from __future__ import annotations

from alembic import context

from flowledger.storage.schema import metadata

_attributes = context.config.attributes
context.configure(
    connection=_attributes["connection"],
    target_metadata=metadata,
    version_table=_attributes["version_table"],
    on_version_apply=_attributes["on_version_apply"],
)
with context.begin_transaction():
    context.run_migrations()

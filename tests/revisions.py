"""Moving a database's schema revision, as another flowledger's ``db upgrade`` would."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from flowledger.storage import migrations


def set_revision(db_url: str, revision: str) -> None:
    """What another flowledger's ``db upgrade`` leaves in the version table."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = :r"), {"r": revision}
            )
    finally:
        engine.dispose()

"""Revision 0016: a schedule is known by its content, not by its place in ``triggers``.

``schedule_states`` was keyed by (workflow name, ``trigger_index``) and every tick's trigger
key was ``schedule:<workflow>:<index>:<tick>``: a push that inserted, removed or reordered
triggers gave a schedule another's progress (a tick fired twice, or missed, or a catch-up
from another's last tick) and another's unfinished ticks (``overlap``). Both are keyed by
the schedule's identity now (``trigger_id``): a digest of its cron, time zone and input,
``-2``, ``-3``… after the second and later schedule of the same content in one version.

The rows are kept: a state row takes the identity of the live version's trigger at its
index (so each schedule goes on exactly as it did); a row no live schedule reads (a
workflow's trigger removed or turned into another kind) is dropped. A tick's execution
gets the key its version's trigger has under the new rule, so neither the scheduler nor a
backfill starts a tick of before the upgrade again; when two old keys meet in one (the
very double fire this fixes), one of the two executions keeps its old key, as history.

Frozen copy: never import schema*.py nor the definition code here. The identity below is
this revision's, whatever a later flowledger computes (it would migrate again).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

_when = sa.DateTime(timezone=True)
#: Executions rekeyed per statement batch.
_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    documents = _Documents(bind)
    _rekey_states(bind, documents)
    _rekey_ticks(bind, documents)


def schedule_ids(document: Any) -> dict[int, str]:
    """Index in ``triggers`` → identity, for each schedule trigger of a stored document."""
    triggers = document.get("triggers") if isinstance(document, dict) else None
    seen: dict[str, int] = {}
    found: dict[int, str] = {}
    for index, trigger in enumerate(triggers if isinstance(triggers, list) else []):
        if not isinstance(trigger, dict) or trigger.get("type") != "schedule":
            continue
        cron = trigger.get("cron")
        if not isinstance(cron, str):
            continue
        text = json.dumps(
            [" ".join(cron.split()), trigger.get("timezone", "UTC"), trigger.get("input", {})],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        content = hashlib.sha256(text.encode()).hexdigest()[:16]
        seen[content] = seen.get(content, 0) + 1
        found[index] = content if seen[content] == 1 else f"{content}-{seen[content]}"
    return found


class _Documents:
    """Each version's schedule identities, read once."""

    def __init__(self, bind: sa.Connection) -> None:
        self._bind = bind
        self._ids: dict[str, dict[int, str]] = {}

    def ids(self, version_id: str | None) -> dict[int, str]:
        if version_id is None:
            return {}
        found = self._ids.get(version_id)
        if found is None:
            query = sa.text("SELECT document FROM workflow_versions WHERE id = :id")
            document = self._bind.execute(query, {"id": version_id}).scalar()
            found = schedule_ids(json.loads(document)) if document is not None else {}
            self._ids[version_id] = found
        return found


def _rekey_states(bind: sa.Connection, documents: _Documents) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT s.workflow_name, s.trigger_index, w.version_id FROM schedule_states s "
            "LEFT JOIN workflows w ON w.name = s.workflow_name"
        )
    ).all()
    kept = [
        {"name": name, "index": index, "id": documents.ids(version_id)[index]}
        for name, index, version_id in rows
        if index in documents.ids(version_id)
    ]
    op.create_table(
        "schedule_states_new",
        sa.Column("workflow_name", sa.String(128), nullable=False),
        sa.Column("trigger_id", sa.String(64), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("last_tick", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
        sa.Column("skipped_ticks", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_skipped_tick", _when),
        # Named: the default name would stay schedule_states_new_pkey after the rename.
        sa.PrimaryKeyConstraint("workflow_name", "trigger_id", name="pk_schedule_states"),
    )
    if kept:  # copied in SQL: the times keep their stored form on either database
        bind.execute(
            sa.text(
                "INSERT INTO schedule_states_new (workflow_name, trigger_id, cron, timezone, "
                "last_tick, updated_at, skipped_ticks, last_skipped_tick) "
                "SELECT workflow_name, CAST(:id AS VARCHAR(64)), cron, timezone, last_tick, "
                "updated_at, skipped_ticks, last_skipped_tick FROM schedule_states "
                "WHERE workflow_name = :name AND trigger_index = :index"
            ),
            kept,
        )
    op.drop_table("schedule_states")
    op.rename_table("schedule_states_new", "schedule_states")


def _rekey_ticks(bind: sa.Connection, documents: _Documents) -> None:
    """Every execution a tick started (``schedule:`` keys), in batches by id."""
    select = sa.text(
        "SELECT id, workflow_name, workflow_version_id, trigger_key FROM executions "
        "WHERE id > :after AND substr(trigger_key, 1, 9) = 'schedule:' ORDER BY id LIMIT :n"
    )
    update = sa.text("UPDATE executions SET trigger_key = :key WHERE id = :id")
    taken: set[str] = set()
    after = ""
    while True:
        rows = bind.execute(select, {"after": after, "n": _BATCH}).all()
        if not rows:
            return
        after = rows[-1][0]
        moved = []
        for execution_id, name, version_id, key in rows:
            new = _new_key(key, name, documents.ids(version_id))
            if new is not None and new not in taken:
                taken.add(new)
                moved.append({"id": execution_id, "key": new})
        if moved:
            bind.execute(update, moved)


def _new_key(key: str, name: str, ids: dict[int, str]) -> str | None:
    """``schedule:<name>:<index>:<tick>`` → ``schedule:<name>:<identity>:<tick>``; None
    when it is not of that form or names no schedule of its version."""
    prefix = f"schedule:{name}:"
    if not key.startswith(prefix):
        return None
    index, colon, tick = key[len(prefix) :].partition(":")
    if not (colon and index.isdigit() and int(index) in ids):
        return None
    return f"{prefix}{ids[int(index)]}:{tick}"

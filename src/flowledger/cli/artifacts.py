"""`flowledger executions artifacts ID [--download DIR]`: files an execution's steps saved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flowledger.app import App, DownloadArtifacts, ListArtifacts
from flowledger.cli.common import (
    DbOption,
    JsonOption,
    execution_id,
    executions_app,
    existing,
    out,
    print_json,
)
from flowledger.cli.render import table as new_table
from flowledger.cli.render import when


@executions_app.command("artifacts")
def executions_artifacts(
    execution: Annotated[str, typer.Argument(metavar="ID", help="Execution id (or a prefix).")],
    download: Annotated[
        Path | None,
        typer.Option(
            "--download",
            metavar="DIR",
            help="Copy every file into DIR (created if needed; existing files are never "
            "overwritten) and verify each checksum.",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List an execution's artifacts: files its steps saved, outputs too big to keep inline."""

    async def go(application: App) -> list[dict[str, Any]]:
        full_id = await execution_id(application, execution)
        artifacts = application.artifacts
        if download is None:
            return [dict(d) for d in await artifacts.list(ListArtifacts(execution_id=full_id))]
        request = DownloadArtifacts(execution_id=full_id, folder=str(download))
        return [dict(d) for d in await artifacts.download(request)]

    docs = existing(db, go)
    if as_json:
        print_json(docs)
        return
    if not docs:
        out.print("this execution has no artifacts")
        return
    _table(docs)
    if download is not None:
        out.print(f"downloaded {len(docs)} file(s) to {download}, checksums verified")


def _table(docs: list[dict[str, Any]]) -> None:
    table = new_table("name", "content type", "size", "sha256", "step", "kind", "created", "id")
    for column in table.columns:
        column.overflow = "fold"
    for doc in docs:
        table.add_row(
            doc.get("path") or doc["name"],
            doc["contentType"],
            _size(doc["size"]),
            doc["sha256"][:12],
            doc["stepId"] or "",
            doc["kind"],
            when(doc["createdAt"]),
            doc["id"],
        )
    out.print(table)


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"

"""`flowledger db info`: which database and artifacts folder a command uses, and sizes."""

from __future__ import annotations

from typing import Any

from flowledger.cli.common import DbOption, JsonOption, db_app, existing, out, show


@db_app.command("info")
def db_info(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Say which database and artifacts folder commands use here, and how big they are.

    Also counts the rows of the main tables."""
    info = existing(db, lambda application: application.database.info())
    show(dict(info), as_json, _render)


def _render(info: dict[str, Any]) -> None:
    size = info["sizeBytes"]
    out.print(f"database   {info['url']} ({info['backend']}, {_bytes(size)})", markup=False)
    folder = info["artifacts"]
    where = folder["path"]
    if folder["exists"]:
        files = f"{folder['files']} files, {_bytes(folder['sizeBytes'])}"
    else:
        files = "not created yet"
    out.print(f"artifacts  {where} ({files})", markup=False)
    out.print("rows", markup=False)
    width = max(len(name) for name in info["tables"])
    for name, count in info["tables"].items():
        out.print(f"  {name:<{width}}  {count:>10,}", markup=False)


def _bytes(size: int | None) -> str:
    if size is None:
        return "in memory"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"

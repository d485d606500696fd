"""Wait on what a database records, read through one engine for the whole wait: opening
an engine for each look (tens of times a second) cost the test process more than the
process under test spent working."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from flowledger import Engine

Documents = list[dict[str, Any]]


def until_documents(
    db_url: str,
    plugin: str,
    done: Callable[[Documents], bool],
    ids: list[str] | None = None,
    seconds: float = 60,
) -> Documents:
    """The documents of ``ids`` (of every execution when None) once ``done`` holds for
    them, or the last ones read after ``seconds`` (the caller's assertions say what is
    missing)."""

    async def wait() -> Documents:
        async with Engine(db_url, plugins=[plugin]) as engine:
            deadline = time.monotonic() + seconds
            while True:
                wanted = ids if ids is not None else [
                    d["id"] for d in await engine.list_executions()
                ]  # fmt: skip
                docs = [await engine.get_execution(i) for i in wanted]
                if done(docs) or time.monotonic() > deadline:
                    return docs
                await asyncio.sleep(0.05)

    return asyncio.run(wait())


def first_step_completed(docs: Documents, step_id: str = "first") -> bool:
    """Whether any of ``docs`` recorded ``step_id`` completed."""
    return any(
        s["stepId"] == step_id and s["status"] == "Completed"
        for doc in docs
        for s in doc["steps"].values()
    )

"""Shared fixtures: every test gets its own fresh SQLite database in a temp folder."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine, StepRegistry

REPO = Path(__file__).resolve().parent.parent

RunYaml = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'flow.db'}"


@pytest.fixture
def registry() -> StepRegistry:
    return StepRegistry.with_builtins()


@pytest.fixture
async def engine(db_url: str, registry: StepRegistry) -> AsyncIterator[Engine]:
    async with Engine(db_url, registry=registry) as eng:
        yield eng


@pytest.fixture
def run_yaml(engine: Engine) -> RunYaml:
    """Compile a YAML text and run it to the end; returns the execution document."""

    async def run(text: str, input: dict[str, Any] | None = None) -> dict[str, Any]:
        workflow = engine.load_text(textwrap.dedent(text), "test.yaml")
        return await engine.run(workflow, input or {})

    return run


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    """stepId -> status of its latest attempt (top-level steps; loop bodies keyed by index)."""
    out: dict[str, tuple[int, str]] = {}
    for step in doc["steps"].values():
        key = step["stepId"] + "".join(f"[{i}]" for i in step["loop"].values())
        if key not in out or step["attempt"] >= out[key][0]:
            out[key] = (step["attempt"], step["status"])
    return {k: v[1] for k, v in out.items()}

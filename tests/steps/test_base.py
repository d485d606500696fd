"""StepContext: what it makes at first use (the engine's logger and artifacts)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from flowledger import StepContext, StepError
from flowledger.steps.artifact_access import ArtifactAccess


class _Artifacts:
    async def save(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        return {"name": name}

    async def save_stream(self, name: str, chunks: Any, content_type: str = "") -> dict[str, Any]:
        return {"name": name}


def _context(http: httpx.AsyncClient, **makers: Any) -> StepContext:
    return StepContext(
        execution_id="exec-1",
        step_id="a",
        step_execution_id="se-1",
        attempt=1,
        idempotency_key="key",
        loop={},
        started_at=datetime.now(UTC),
        http=http,
        **makers,
    )


async def test_logger_and_artifacts_given_as_makers_are_made_once_at_first_use() -> None:
    logger_calls: list[int] = []
    artifact_calls: list[int] = []
    gate = threading.Barrier(8)

    def make_logger() -> logging.LoggerAdapter[logging.Logger]:
        logger_calls.append(1)
        return logging.LoggerAdapter(logging.getLogger("test"), {})

    def make_artifacts() -> ArtifactAccess:
        artifact_calls.append(1)
        return _Artifacts()

    async with httpx.AsyncClient() as http:
        ctx = _context(http, make_logger=make_logger, make_artifacts=make_artifacts)
        assert logger_calls == [] and artifact_calls == []  # nothing made for a step's start

        def read_both() -> tuple[object, object]:
            gate.wait(timeout=30)  # a plain def handler's threads, asking at once
            return ctx.logger, ctx.artifacts

        with ThreadPoolExecutor(8) as pool:
            seen = list(pool.map(lambda _: read_both(), range(8)))
        assert logger_calls == [1] and artifact_calls == [1]
        assert {id(logger) for logger, _ in seen} == {id(ctx.logger)}
        assert {id(artifacts) for _, artifacts in seen} == {id(ctx.artifacts)}
        assert await ctx.artifacts.save("a.txt", b"x") == {"name": "a.txt"}


async def test_a_context_made_by_hand_keeps_what_it_was_given() -> None:
    logger = logging.LoggerAdapter(logging.getLogger("test"), {})
    async with httpx.AsyncClient() as http:
        ctx = _context(http, logger=logger)
        assert ctx.logger is logger
        with pytest.raises(StepError, match=r"ctx\.artifacts is not available"):
            await ctx.artifacts.save("a.txt", b"x")
        with pytest.raises(TypeError, match="needs a logger"):
            _context(http)

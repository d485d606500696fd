"""Helpers for testing your own step types: a real ``StepContext`` to call a handler with.

A step type made with ``@step_type`` is still its function, so a unit test calls it::

    async with step_context() as ctx:
        out = await send_email(SendEmailInput(to="ada@example.com"), ctx)

To run whole workflows in tests, use an ``Engine`` on ``sqlite://`` (an in-memory
database, gone when the engine closes): see the README's "Testing workflows".
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import httpx

from flowledger.steps.base import StepContext, VariableAccess
from flowledger.timeutil import utcnow


@contextlib.asynccontextmanager
async def step_context(
    *,
    execution_id: str = "test-execution",
    step_id: str = "step",
    attempt: int = 1,
    idempotency_key: str | None = None,
    loop: Mapping[str, int] | None = None,
    started_at: datetime | None = None,
    http: httpx.AsyncClient | None = None,
    variables: VariableAccess | None = None,
    definition_input: Any = None,
) -> AsyncIterator[StepContext]:
    """A ``StepContext`` as the engine gives a handler, for ``attempt`` of ``step_id``:
    its ``http`` a real client (``http=`` yours, an ``httpx.MockTransport`` one say;
    else one made here and closed after), its ``logger`` the ``flowledger.testing``
    logger, a fresh idempotency key unless given."""
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(httpx.AsyncClient())
        step_execution_id = str(uuid.uuid4())
        yield StepContext(
            execution_id=execution_id,
            step_id=step_id,
            step_execution_id=step_execution_id,
            attempt=attempt,
            idempotency_key=idempotency_key or f"{execution_id}:{step_execution_id}",
            loop=dict(loop or {}),
            started_at=started_at or utcnow(),
            http=http,
            logger=logging.LoggerAdapter(logging.getLogger("flowledger.testing"), {}),
            variables=variables,
            definition_input=definition_input,
        )

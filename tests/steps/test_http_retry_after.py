"""A retryable HTTP answer's ``Retry-After`` sets the least wait before the next attempt:
read by sys.http_request, waited by the runtime as the retry's timer (``wakeAt``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import pytest

from flowledger import Engine
from flowledger.timeutil import retry_after
from tests.runtime.support import latest, wait_until, yaml
from tests.steps.http_server import serve


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve() as url:
        yield url


def _workflow(url: str, retry: str) -> str:
    return yaml(
        f"""
        name: busy
        steps:
          - id: call
            type: sys.http_request
            input: {{url: "{url}"}}
            retry: {retry}
        """
    )


def _times(doc: dict[str, Any], attempt: int) -> dict[str, Any]:
    return next(s for s in doc["steps"].values() if s["attempt"] == attempt)


@pytest.mark.parametrize("status", [429, 503])
async def test_the_next_attempt_waits_for_retry_after(
    engine: Engine, base: str, status: int
) -> None:
    retry = "{max_attempts: 2, backoff: fixed, initial_delay: 100ms, jitter: false}"
    workflow = engine.load_text(_workflow(f"{base}/status/{status}?retry_after=1", retry))
    doc = await engine.run(workflow)
    assert doc["runtimeStatus"] == "Failed"
    events = await engine.events(doc["id"])
    scheduled = next(e for e in events if e["kind"] == "step.retry_scheduled")
    assert scheduled["detail"]["delayMs"] == 1000  # not the policy's 100 ms
    first, second = _times(doc, 1), _times(doc, 2)
    waited = _parse(second["startedAt"]) - _parse(first["failedAt"])
    assert waited >= timedelta(seconds=1), (first, second)


@pytest.mark.parametrize(
    ("retry", "delay_ms"),
    [
        ("{max_attempts: 2, initial_delay: 100ms}", 600_000),  # no max_delay: up to 1 h
        ("{max_attempts: 2, initial_delay: 100ms, max_delay: 2s}", 2_000),
        (
            "{max_attempts: 2, backoff: fixed, initial_delay: 20m, max_delay: 1h, jitter: false}",
            1_200_000,
        ),
    ],
)
async def test_retry_after_is_bounded_by_the_policy(
    engine: Engine, base: str, retry: str, delay_ms: int
) -> None:
    """A longer Retry-After than the step's max_delay is cut to it; a shorter one than
    the policy's own delay changes nothing."""
    workflow = engine.load_text(_workflow(f"{base}/status/429?retry_after=600", retry))
    execution_id = await engine.start(workflow, hold=True)
    task = asyncio.create_task(engine.drive(execution_id))
    try:
        doc = await wait_until(engine, execution_id, lambda d: _scheduled(d))
        events = await engine.events(execution_id)
        scheduled = next(e for e in events if e["kind"] == "step.retry_scheduled")
        assert scheduled["detail"]["delayMs"] == delay_ms
        # The wait is the stored timer of the next attempt, like any retry's backoff.
        assert latest(doc, "call")["attempt"] == 2
        assert scheduled["detail"]["wakeAt"] == _wake_at(doc, scheduled)
    finally:
        await engine.cancel(execution_id)
        await asyncio.wait_for(task, 15)


def _scheduled(doc: dict[str, Any]) -> bool:
    return any(s["attempt"] == 2 for s in doc["steps"].values())


def _wake_at(doc: dict[str, Any], scheduled: dict[str, Any]) -> str:
    failed = _parse(_times(doc, 1)["failedAt"])
    wake = failed + timedelta(milliseconds=scheduled["detail"]["delayMs"])
    return wake.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_retry_after_reads_seconds_and_dates() -> None:
    date = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    said = {"date": format_datetime(date, usegmt=True)}
    assert retry_after({"retry-after": "5"}) == timedelta(seconds=5)
    assert retry_after({"retry-after": " 0 "}) == timedelta(0)
    later = format_datetime(date + timedelta(minutes=2), usegmt=True)
    assert retry_after({**said, "retry-after": later}) == timedelta(minutes=2)
    earlier = format_datetime(date - timedelta(minutes=2), usegmt=True)
    assert retry_after({**said, "retry-after": earlier}) == timedelta(0)
    assert retry_after({"retry-after": "9" * 5000}) == timedelta(seconds=10**9 - 1)
    for unreadable in ("", "soon", "-5", "1.5", "٣"):
        assert retry_after({"retry-after": unreadable}) is None
    assert retry_after({}) is None


async def test_the_handler_carries_retry_after_on_retryable_answers_only(base: str) -> None:
    import httpx

    from tests.steps.test_http_request import fails

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        busy = await fails(http, url=f"{base}/status/429?retry_after=5")
        dated = await fails(http, url=f"{base}/status/503?retry_after={quote(later)}")
        refused = await fails(http, url=f"{base}/status/404?retry_after=5")
    assert busy.retryable and busy.retry_after == timedelta(seconds=5)
    assert dated.retry_after is not None
    assert timedelta(seconds=115) <= dated.retry_after <= timedelta(seconds=120)
    assert not refused.retryable and refused.retry_after is None

"""Worker duty: send the outbox's deliveries as signed Standard Webhooks, and retry them.

Each look claims the due deliveries it has room for (storage.webhooks: a lease per
attempt, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never send one
delivery at once), up to ``BATCH`` in flight, and POSTs each in a task of its own
through the engine's HTTP client, the one ``sys.http_request`` uses: subscriber URLs
pass the same egress guard, redirects are not followed, proxies from the environment
are ignored. A slow receiver holds only its own attempts: the next look sends the
others, and the worker's other duties are not held either.

An attempt, connection and the answer's whole body included, ends at
``FLOWLEDGER_DELIVERY_TIMEOUT`` (steps.exchange.whole_exchange): a receiver trickling
its answer a byte at a time cannot keep it past its claim's lease (the timeout plus
``LEASE_MARGIN``), when another worker would send it again and this one's answer be
thrown away.

Every attempt carries the delivery's id as ``webhook-id`` (the same on every retry, so
receivers dedupe on it), a fresh ``webhook-timestamp`` and ``webhook-signature`` (v1,
HMAC-SHA256 with the subscription's secret, by the ``standardwebhooks`` package).
A 2xx answer delivers it. A ``410 Gone`` fails it at once: the receiver says the
endpoint is no more, and a day of retries would not change that (the subscription
stays: removing it is an admin's call). Anything else (another status, a timeout, a
refused or failed connection) schedules the next attempt: the n-th retry waits
``initial · 2^(n-1)`` capped at ``max``, of which a random half is jitter (so receivers
that come back are not hit by every sender at once), the last one at ``retry_for``
after the event (24 h by default); a delivery failing then is ``failed``. The schedule
is ``Settings.deliveries`` (``FLOWLEDGER_DELIVERY_*``). A refusal with a
``Retry-After`` (a 429 or a 503, say: seconds or an HTTP-date, read as
``sys.http_request`` reads it) is waited when it asks for longer, up to ``max`` (a
receiver asking for a day is not obeyed blindly).

Logs name a subscription by its id and its URL's origin (codec.origin_only), as a
viewer sees it: a webhook URL is often a credential itself.

At least once: a worker that stops mid-attempt hands the delivery back, due at once; one
that dies leaves it claimed until its lease lapses; another worker then sends it again
with the same ``webhook-id``. Nothing is lost: the delivery row was committed with the
status change it reports.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from flowledger.codec import origin_only, url_hidden
from flowledger.config import DeliverySchedule
from flowledger.durations import spoken
from flowledger.logs import exception_line, log_extra
from flowledger.runtime.engine import Engine
from flowledger.steps.exchange import whole_exchange
from flowledger.storage.webhooks import ClaimedDelivery
from flowledger.timeutil import retry_after

log = logging.getLogger(__name__)

#: Deliveries a worker claims at once, and has in flight at most.
BATCH = 50
#: Added to the attempt timeout to make the claim's lease.
LEASE_MARGIN = timedelta(seconds=30)
USER_AGENT = "flowledger-webhooks/1"
#: What a receiver answers when the endpoint is no more: the delivery fails, not retried.
GONE = 410


def retry_delay(
    attempt: int,
    schedule: DeliverySchedule,
    rand: Callable[[], float] = random.random,
    asked: timedelta | None = None,
) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1 for the first):
    ``initial · 2^(attempt-1)`` capped at ``max``; the upper half of it is random. The
    wait the receiver ``asked`` for (its ``Retry-After``) when longer, up to ``max``."""
    full: timedelta = min(schedule.initial * (2 ** min(attempt - 1, 40)), schedule.max)
    wait = full / 2 + (full / 2) * rand()
    return wait if asked is None else max(wait, min(asked, schedule.max))


class DeliveryDuty:
    name = "deliveries"
    paced = False

    def __init__(self, engine: Engine, schedule: DeliverySchedule | None = None) -> None:
        self.engine = engine
        self.schedule = schedule or engine.settings.deliveries
        self.lease = self.schedule.timeout + LEASE_MARGIN
        #: Attempts in flight, a task each, and the delivery each sends (run_once does
        #: not wait for them).
        self._sending: dict[asyncio.Task[None], ClaimedDelivery] = {}

    async def run_once(self) -> float:
        room = BATCH - len(self._sending)
        if room <= 0:
            return 0.1  # full: look again once some attempts ended
        claimed = await self.engine.store.claim_deliveries(self.engine.owner, room, self.lease)
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery), name=f"delivery {delivery.id}")
            self._sending[task] = delivery
            task.add_done_callback(self._ended)
        if not claimed:
            return 1.0
        return 0.0 if len(claimed) == room else 0.1

    async def stop(self) -> None:
        """Cancel the attempts in flight and hand their deliveries back, due at once.
        Here, not only in the attempt: a task cancelled before it first ran never runs
        its body, and its delivery stayed claimed until the lease lapsed (40 s)."""
        sending = dict(self._sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
        for task, delivery in sending.items():
            if task.cancelled():  # one handed back already is no longer ours: a no-op
                await self._hand_back(delivery)

    async def _hand_back(self, delivery: ClaimedDelivery) -> None:
        await self.engine.store.finish_delivery(
            delivery,
            self.engine.owner,
            delivered=False,
            status_code=None,
            error="the worker stopped during the attempt",
            retry_in=timedelta(0),
        )

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._sending.pop(task, None)
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        # Recording the attempt failed (the database, say): the claim's lease lapses and
        # the delivery is tried again; said here, as nobody awaits the task.
        log.error(
            "%s: the attempt could not be recorded (%s); it is tried again once its claim lapses",
            task.get_name(),
            exception_line(exc),
            extra=log_extra("deliver_webhook"),
        )

    async def deliver_pending(self) -> int:
        """Attempt every delivery due now; how many were attempted (for programs and tests
        that run no worker)."""
        done = 0
        while claimed := await self.engine.store.claim_deliveries(
            self.engine.owner, BATCH, self.lease
        ):
            await asyncio.gather(*(self._attempt(delivery) for delivery in claimed))
            done += len(claimed)
        return done

    async def _attempt(self, delivery: ClaimedDelivery) -> None:
        import httpx  # a worker that delivers nothing never imports it

        status_code: int | None = None
        error: str | None = None
        asked: timedelta | None = None
        timeout = self.schedule.timeout.total_seconds()
        try:
            async with (
                whole_exchange(timeout),
                self.engine.http.stream(
                    "POST",
                    delivery.url,
                    content=delivery.payload.encode(),
                    headers=self._headers(delivery),
                    timeout=timeout,
                ) as response,
            ):
                async for _ in response.aiter_raw():
                    pass  # read to its end (the connection is reused), not kept
            status_code = response.status_code
            if status_code == GONE:
                error = f"the receiver answered {GONE} Gone: the endpoint is no more; not retried"
            elif not 200 <= status_code < 300:
                asked = retry_after(response.headers)
                error = f"the receiver answered {status_code}" + (
                    f" asking to retry after {spoken(asked)}" if asked is not None else ""
                )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except asyncio.CancelledError:
            # The worker stops: hand the delivery back now (due at once), not when the
            # claim's lease lapses. The receiver may have it already: at least once.
            await asyncio.shield(self._hand_back(delivery))
            raise
        delivered = error is None
        retry_in = None
        if not delivered and status_code != GONE:
            retry_in = self._retry_in(delivery, asked)
        kept = await self.engine.store.finish_delivery(
            delivery,
            self.engine.owner,
            delivered=delivered,
            status_code=status_code,
            error=error,
            retry_in=retry_in,
        )
        extra = log_extra(
            "deliver_webhook", delivery=delivery.id, subscription=delivery.subscription_id
        )
        if not kept:
            log.warning("delivery %s: the claim lapsed; another worker has it", delivery.id,
                        extra=extra)  # fmt: skip
        elif error is not None:
            log.warning(
                "delivery %s (subscription %s) to %s, attempt %d: %s; %s",
                delivery.id,
                delivery.subscription_id,
                origin_only(delivery.url),
                delivery.attempt,
                url_hidden(error, delivery.url),
                f"next attempt in {spoken(retry_in)}" if retry_in is not None else "given up",
                extra=extra,
            )

    def _headers(self, delivery: ClaimedDelivery) -> dict[str, str]:
        from standardwebhooks import Webhook

        now = self.engine.clock.now()
        signature = Webhook(delivery.secret).sign(delivery.id, now, delivery.payload)
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }

    def _retry_in(self, delivery: ClaimedDelivery, asked: timedelta | None) -> timedelta | None:
        """The wait before the next attempt; None once ``retry_for`` has passed."""
        now: datetime = self.engine.clock.now()
        remaining = delivery.created_at + self.schedule.retry_for - now
        if remaining <= timedelta(0):
            return None
        return min(retry_delay(delivery.attempt, self.schedule, asked=asked), remaining)

"""Service metrics in Prometheus form, on a registry of their own (one per App: tests and
several apps in one process never share the global default registry).

Where each comes from:

- ``flowledger_executions_started_total{workflow}``: ``execution.started`` and
  ``execution.retried`` events this process's engine committed (the observer seam,
  ``runtime.observer``), so started minus finished is what is in flight;
- ``flowledger_executions_finished_total{workflow,status}``: ``execution_finished``;
- ``flowledger_step_attempt_duration_seconds{step_type,status}``: finished attempts
  whose duration is known (``step_attempt_finished``);
- ``flowledger_claims_total`` and ``flowledger_lease_takeovers_total``: claims and
  takeovers this process made;
- ``flowledger_queue_depth{state}`` (ready, parked, awaiting_input) and
  ``flowledger_delivery_backlog`` (pending outbound deliveries): one cheap store read
  (``Store.work_gauges``) on scrape, reused for :data:`GAUGE_TTL` seconds;
  ``flowledger_database_up`` is 0 while that read fails (the scrape still answers, the
  gauges keep their last values);
- ``flowledger_http_request_duration_seconds{method,route,status}``: the HTTP face's
  middleware (``api.metrics``) records it, by route template.

Engine counters count what *this* process ran: a ``serve`` with workers reports them; an
API-only node (``--no-workers``) reports HTTP metrics and the gauges (the same for every
node: they are read from the database). The observer is attached on first use of
``App.metrics``, so commands that never serve metrics pay nothing for it.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from flowledger.logs import log_extra
from flowledger.runtime.engine import Engine
from flowledger.runtime.observer import (
    BaseObserver,
    Claim,
    CommittedEvents,
    ExecutionFinished,
    StepAttempt,
    Takeover,
)
from flowledger.storage.sqlpart import driver_message

log = logging.getLogger(__name__)

#: A first run and each retry in place (which ends again): started minus finished is
#: what is in flight.
_STARTS = frozenset({"execution.started", "execution.retried"})
#: Seconds a scrape reuses the last queue reading.
GAUGE_TTL = 1.0
#: Step attempts run from milliseconds (transforms) to hours (waits for people).
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600, 21600)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30, 60)
#: Prometheus text exposition format, version 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics(BaseObserver):
    """The registry and its instruments; also the engine observer that feeds them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.started = Counter(
            "flowledger_executions_started", "Executions started", ["workflow"], registry=r
        )
        self.finished = Counter(
            "flowledger_executions_finished",
            "Executions that reached a terminal status",
            ["workflow", "status"],
            registry=r,
        )
        self.step_duration = Histogram(
            "flowledger_step_attempt_duration_seconds",
            "Duration of finished step attempts",
            ["step_type", "status"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.claims = Counter("flowledger_claims", "Executions claimed (leased)", registry=r)
        self.takeovers = Counter(
            "flowledger_lease_takeovers",
            "Executions taken over from a process whose lease lapsed",
            registry=r,
        )
        self.queue = Gauge(
            "flowledger_queue_depth", "Executions waiting, by state", ["state"], registry=r
        )
        self.backlog = Gauge(
            "flowledger_delivery_backlog", "Outbound webhook deliveries pending", registry=r
        )
        self.database_up = Gauge(
            "flowledger_database_up",
            "1 when the last read of the queue gauges reached the database, else 0",
            registry=r,
        )
        self.database_up.set(1)
        self.http = Histogram(
            "flowledger_http_request_duration_seconds",
            "HTTP requests: time until the response starts, by route template",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self._read_at = float("-inf")
        self._reached = True

    # -- the observer ----------------------------------------------------------------

    def events_committed(self, batch: CommittedEvents) -> None:
        for event in batch.events:
            if event["kind"] in _STARTS:
                self.started.labels(batch.info.workflow).inc()

    def step_attempt_finished(self, attempt: StepAttempt) -> None:
        if attempt.duration is not None:
            self.step_duration.labels(attempt.step_type, attempt.status).observe(
                max(attempt.duration, 0.0)
            )

    def execution_finished(self, finished: ExecutionFinished) -> None:
        self.finished.labels(finished.info.workflow, finished.status).inc()

    def execution_claimed(self, claim: Claim) -> None:
        self.claims.inc()

    def lease_taken_over(self, takeover: Takeover) -> None:
        self.takeovers.inc()

    # -- scraping --------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the queue gauges from the store, at most once per :data:`GAUGE_TTL`."""
        now = time.monotonic()
        if now - self._read_at < GAUGE_TTL:
            return
        try:
            gauges = await self._engine.store.work_gauges()
        except Exception as exc:
            # A scrape during an outage still answers: this process's counters are what
            # an operator needs then, and database_up says the gauges are stale.
            self._read_at = time.monotonic()
            if self._reached:  # once per outage, not per scrape
                log.warning(
                    "metrics: cannot read the queue gauges from the database (%s); they "
                    "keep their last values and flowledger_database_up is 0",
                    driver_message(exc),
                    extra=log_extra("metrics"),
                )
            self._reached = False
            self.database_up.set(0)
            return
        self._read_at = time.monotonic()
        self._reached = True
        self.database_up.set(1)
        for state in ("ready", "parked", "awaiting_input"):
            self.queue.labels(state).set(gauges[state])
        self.backlog.set(gauges["deliveries_pending"])

    async def exposition(self) -> bytes:
        """The Prometheus text of every metric (gauges refreshed when stale)."""
        await self.refresh()
        return generate_latest(self.registry)

"""``/metrics``: Prometheus text without a token, fed by the engine observer, the queue
gauges and the HTTP middleware (route templates, never raw URLs)."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowledger.app import App
from tests.api.conftest import Service
from tests.api.helpers import APPROVAL, FAILING, HELLO, push, settled, start, terminal, unique


def samples(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def timed(http: httpx.Client, method: str, route: str, status: str) -> float:
    """How many requests the request timer has counted under ``route``'s template."""
    labels = {"method": method, "route": route, "status": status}
    return value(samples(http), "flowledger_http_request_duration_seconds_count", **labels)


def test_metrics_count_what_the_service_did(service: Service) -> None:
    with service.client("admin") as http:
        hello = push(http, HELLO, unique("m-hello"))
        failing = push(http, FAILING, unique("m-fail"))
        waiting = push(http, APPROVAL, unique("m-wait"))
        done = start(http, hello, {"who": "metrics"})
        assert terminal(http, done["id"])["runtimeStatus"] == "Completed"
        failed = start(http, failing)
        assert terminal(http, failed["id"])["runtimeStatus"] == "Failed"
        parked = start(http, waiting)
        assert settled(http, parked["id"])["runtimeStatus"] == "AwaitingUserInput"
        http.get(f"/api/v1/executions/{done['id']}")
        http.get("/api/v1/executions/no-such-id")
    with service.client() as anonymous:  # no token
        time.sleep(1.1)  # the queue gauges are cached for a second
        found = samples(anonymous)
    assert value(found, "flowledger_executions_started_total", workflow=hello) == 1
    assert (
        value(found, "flowledger_executions_finished_total", workflow=hello, status="Completed")
        == 1
    )
    assert (
        value(found, "flowledger_executions_finished_total", workflow=failing, status="Failed") == 1
    )
    assert (
        value(
            found,
            "flowledger_step_attempt_duration_seconds_count",
            step_type="sys.transform",
            status="Completed",
        )
        >= 1
    )
    assert value(found, "flowledger_claims_total") >= 3
    assert value(found, "flowledger_queue_depth", state="awaiting_input") >= 1
    assert ("flowledger_delivery_backlog", frozenset()) in found
    assert ("flowledger_lease_takeovers_total", frozenset()) in found
    route = "/api/v1/executions/{id}"
    assert (
        value(
            found,
            "flowledger_http_request_duration_seconds_count",
            method="GET",
            route=route,
            status="200",
        )
        >= 1
    )
    assert (
        value(
            found,
            "flowledger_http_request_duration_seconds_count",
            method="GET",
            route=route,
            status="404",
        )
        >= 1
    )
    assert not any("no-such-id" in str(labels) for _, labels in found)


async def test_each_app_has_its_own_registry(tmp_path: object) -> None:
    async with App("sqlite://") as one, App("sqlite://") as two:
        assert one.metrics.registry is not two.metrics.registry
        assert one.metrics is one.metrics
        text = (await one.metrics.exposition()).decode()
        assert 'flowledger_queue_depth{state="ready"} 0.0' in text


async def test_a_scrape_during_a_database_outage_still_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole scrape failed (a bare 500 and a traceback) while the database was
    down, so this process's counters were lost exactly when they were wanted."""
    path = tmp_path / "m.db"
    async with App(f"sqlite:///{path}") as app:
        engine, metrics = app.engine, app.metrics  # its observer is attached on first use
        done = await engine.run(engine.load_text(HELLO.format(name="outage")), {"who": "x"})
        assert done["runtimeStatus"] == "Completed"
        text = (await metrics.exposition()).decode()
        assert "flowledger_database_up 1.0" in text
        # The database stops answering the gauges' read (a real error from SQLite).
        with sqlite3.connect(path) as other:
            other.execute("ALTER TABLE executions RENAME TO executions_away")
        metrics._read_at = float("-inf")  # past the gauges' one-second cache
        with caplog.at_level(logging.WARNING):
            for _ in range(2):
                text = (await metrics.exposition()).decode()
                metrics._read_at = float("-inf")
        assert "flowledger_database_up 0.0" in text
        assert 'flowledger_executions_started_total{workflow="outage"} 1.0' in text
        warned = [r for r in caplog.records if "queue gauges" in r.getMessage()]
        assert len(warned) == 1  # once per outage
        with sqlite3.connect(path) as other:
            other.execute("ALTER TABLE executions_away RENAME TO executions")
        text = (await metrics.exposition()).decode()
        assert "flowledger_database_up 1.0" in text


async def test_a_retry_counts_as_a_start(tmp_path: Path) -> None:
    """Finished reached 2 after a retry while started stayed 1: in flight went negative."""
    async with App(f"sqlite:///{tmp_path / 'r.db'}") as app:
        engine, metrics = app.engine, app.metrics
        workflow = engine.load_text(FAILING.format(name="again"))
        failed = await engine.run(workflow)
        assert failed["runtimeStatus"] == "Failed"
        await engine.retry(failed["id"])
        assert (await engine.drive(failed["id"]))["runtimeStatus"] == "Failed"
        text = (await metrics.exposition()).decode()
    assert 'flowledger_executions_started_total{workflow="again"} 2.0' in text
    assert 'flowledger_executions_finished_total{status="Failed",workflow="again"} 2.0' in text

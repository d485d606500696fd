"""``/metrics``: Prometheus text without a token, fed by the engine observer, the queue
gauges and the HTTP middleware (route templates, never raw URLs)."""

from __future__ import annotations

import time

import httpx
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

"""Every example in examples/ runs end to end through the real CLI."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.conftest import REPO

EXAMPLES = REPO / "examples"

pytestmark = pytest.mark.e2e


def _shipped_server() -> Any:
    """examples/enrich_server.py, the stand-in service the example's header starts."""
    spec = importlib.util.spec_from_file_location("enrich_server", EXAMPLES / "enrich_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EnrichServer = _shipped_server().EnrichServer


@pytest.fixture
def enrich_server() -> Iterator[EnrichServer]:
    server = EnrichServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_lead_followup(cli: Cli, enrich_server: EnrichServer) -> None:
    url = f"http://127.0.0.1:{enrich_server.server_address[1]}/lookup"
    result = cli(
        "run",
        "examples/lead_followup.yaml",
        "--plugin",
        "examples/plugins/crm.py",
        "--input",
        json.dumps({"region": "EU", "enrich_url": url}),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["output"]["processed"] == 3
    assert sorted(doc["output"]["emailed"]) == [
        "ada@example.com",
        "alan@example.com",
        "barbara@example.com",
    ]
    assert doc["output"]["team"] == "sales"
    # Each email was retried once after a 503, with the same idempotency key both times.
    by_email: dict[str, set[str]] = {}
    for request in enrich_server.requests:
        by_email.setdefault(request["email"], set()).add(request["key"])
    assert len(enrich_server.requests) == 6
    assert all(len(keys) == 1 for keys in by_email.values())
    assert len({k for keys in by_email.values() for k in keys}) == 3
    enrich = [s for s in doc["steps"].values() if s["stepId"] == "enrich"]
    assert sorted(s["attempt"] for s in enrich) == [1, 1, 1, 2, 2, 2]
    email = [
        s for s in doc["steps"].values() if s["stepId"] == "email" and s["status"] == "Completed"
    ]
    assert {s["outputData"]["to"] for s in email} == set(doc["output"]["emailed"])


def test_cursor_paging_collects_every_page_once(cli: Cli, enrich_server: EnrichServer) -> None:
    url = f"http://127.0.0.1:{enrich_server.server_address[1]}/contacts"
    result = cli(
        "run", "examples/cursor_paging.yaml", "--input", json.dumps({"url": url}), "--json"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["output"]["pages"] == 3
    # The pages' contacts as one list, in page order (the flatten filter).
    names = [c["email"].split("@")[0] for c in doc["output"]["contacts"]]
    assert names == ["ada", "alan", "barbara", "grace", "linus"]
    fetches = sorted(
        (s for s in doc["steps"].values() if s["stepId"] == "fetch"),
        key=lambda s: s["loop"]["pages"],
    )
    assert [s["inputData"]["query"]["cursor"] for s in fetches] == [
        "",
        "alan@example.com",
        "grace@example.com",
    ]
    shown = cli("executions", "show", doc["id"])
    assert shown.returncode == 0, shown.stderr
    assert "pages[2]" in shown.stdout  # each iteration of the body, by index
    assert cli("executions", "logs", doc["id"]).returncode == 0


def test_lead_followup_with_no_leads_takes_no_action(cli: Cli) -> None:
    result = cli(
        "run",
        "examples/lead_followup.yaml",
        "--plugin",
        "examples/plugins/crm.py",
        "--input",
        json.dumps({"region": "APAC", "enrich_url": "http://127.0.0.1:9/none"}),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["runtimeStatus"] == "CompletedWithNoActionTaken"
    assert doc["output"]["processed"] == 0


def test_lead_followup_needs_its_plugin(cli: Cli) -> None:
    result = cli("validate", "examples/lead_followup.yaml")
    assert result.returncode == 2
    assert "unknown step type 'crm.query_leads'" in result.stderr
    assert (
        cli(
            "validate", "examples/lead_followup.yaml", "--plugin", "examples/plugins/crm.py"
        ).returncode
        == 0
    )


def test_order_pipeline_branches(cli: Cli) -> None:
    order = {"items": [{"sku": "a", "qty": 1, "price": 9.5}, {"sku": "b", "qty": 2, "price": 3}]}

    def place(arguments: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        result = cli(
            "run", "examples/order_pipeline.yaml", "--json", "--input", json.dumps(arguments)
        )
        return result.returncode, json.loads(result.stdout)

    code, ok = place({**order, "country": "DE"})
    assert code == 0
    assert ok["runtimeStatus"] == "Completed"
    # 1 x 9.5 + 2 x 3: each line's quantity times its price
    assert ok["output"] == {"total": 15.5, "decision": True, "shipping": {"carrier": "DHL"}}
    loyalty = next(s for s in ok["steps"].values() if s["stepId"] == "loyalty_bonus")
    assert loyalty["status"] == "Failed"  # tolerated by continue_on_error
    _, fraud = place({**order, "country": "XX"})
    assert fraud["runtimeStatus"] == "CompletedWithNoActionTaken"
    code, empty = place({"items": [], "country": "DE"})
    assert code == 1
    assert empty["error"]["message"] == "the order has no items"


def test_nightly_report(cli: Cli) -> None:
    regions = {
        "regions": [
            {"name": "eu", "days": [1, 2, 3]},
            {"name": "us", "days": [10, 20]},
            {"name": "apac", "days": []},
        ]
    }
    result = cli("run", "examples/nightly_report.yaml", "--json", "--input", json.dumps(regions))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["output"]["grand_total"] == 36
    assert doc["output"]["regions"] == ["apac", "eu", "us"]
    assert doc["output"]["report"] == {"eu": 6, "us": 30, "apac": 0}
    assert [r["days"] for r in doc["output"]["per_region"]] == [3, 2, 0]


def test_every_example_validates(cli: Cli) -> None:
    result = cli(
        "validate",
        "examples/hello.yaml",
        "examples/order_pipeline.yaml",
        "examples/nightly_report.yaml",
        "examples/lead_followup.yaml",
        "examples/cursor_paging.yaml",
        "examples/trip_saga.yaml",
        "--plugin",
        "examples/plugins/crm.py",
    )
    assert result.returncode == 0, result.stderr


def test_batch_parent_runs_one_child_per_order(cli: Cli) -> None:
    pushed = cli("workflows", "push", "examples/batch_child.yaml")
    assert pushed.returncode == 0, pushed.stderr
    orders = '{"orders": [{"id": "a", "total": 120}, {"id": "b", "total": 75}, {"id": "c", "total": 300}]}'
    result = cli("run", "examples/batch_parent.yaml", "--input", orders, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["output"] == {"scored": 3, "best": "c"}
    [step] = [s for s in doc["steps"].values() if s["stepId"] == "score_each"]
    children = step["childWorkflowExecutions"]
    assert [set(child) for child in children] == [{"id"}] * 3
    too_big = '{"orders": [{"id": "x", "total": 30000}]}'
    failed = cli("run", "examples/batch_parent.yaml", "--input", too_big)
    assert failed.returncode == 1
    assert "order x is too large to score automatically" in failed.stdout


def test_trip_saga_undoes_what_was_booked_newest_first(cli: Cli) -> None:
    booked = cli("run", "examples/trip_saga.yaml", "--input", '{"car_available": true}', "--json")
    assert booked.returncode == 0, booked.stderr
    assert json.loads(booked.stdout)["output"] == {"booked": True}

    failed = cli("run", "examples/trip_saga.yaml", "--input", '{"car_available": false}', "--json")
    assert failed.returncode == 1, failed.stderr
    doc = json.loads(failed.stdout)
    assert doc["error"]["message"] == "trip not booked: no car left"
    steps = sorted(doc["steps"].values(), key=lambda s: s["startedAt"] or "~")
    status = {s["stepId"]: s["status"] for s in steps}
    assert status["undo_car"] == "Disabled"  # never booked: nothing to undo
    assert status["undo_hotel"] == status["undo_flight"] == "Completed"
    undone = [s["stepId"] for s in steps if s["stepId"].startswith("undo_") and s["startedAt"]]
    assert undone == ["undo_hotel", "undo_flight"]  # newest booking undone first
    assert [s["outputData"] for s in steps if s["stepId"] in undone] == [
        "cancel H-204",
        "cancel F-17",
    ]

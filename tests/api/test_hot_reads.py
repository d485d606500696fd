"""``GET /api/v1/executions/{id}``: its plainest requests are answered before routing
(api.hot) from documents kept with their rows (app.encoded). The answers must be the
routed ones, errors keep their shape, and a change committed by another process is in
the very next read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flowledger.app import App, CancelExecution
from tests.api.conftest import Service, launch
from tests.api.helpers import APPROVAL, error, push, settled, start, unique
from tests.api.test_metrics import timed


def test_the_plain_read_is_the_routed_one(service: Service) -> None:
    with service.client("viewer") as viewer, service.client("admin") as operator:
        name = push(operator, APPROVAL)
        made = start(operator, name)["id"]
        assert settled(operator, made)["runtimeStatus"] == "AwaitingUserInput"  # it stays
        path = f"/api/v1/executions/{made}"
        plain = viewer.get(path)
        routed = viewer.get(path, params={"wait": 0})  # a query: the FastAPI route
        assert plain.status_code == routed.status_code == 200
        assert plain.headers["content-type"] == routed.headers["content-type"]
        assert plain.json() == routed.json()
        assert viewer.get(path).content == plain.content  # kept bytes, same answer
        lower = viewer.get(path, headers={"Authorization": f"bearer {service.tokens['viewer']}"})
        assert lower.json() == plain.json()  # the scheme is case-insensitive, as routed


def test_plain_reads_that_fail_answer_as_the_route_does(service: Service) -> None:
    with service.client("admin") as admin:
        made = start(admin, push(admin, APPROVAL))["id"]
    path = f"/api/v1/executions/{made}"
    with service.client() as anonymous:
        assert error(anonymous.get(path), 401)["code"] == "unauthenticated"
        basic = {"Authorization": f"Basic {service.tokens['viewer']}"}
        assert error(anonymous.get(path, headers=basic), 401)["code"] == "unauthenticated"
    with service.client(token="flt_not-a-token") as forged:
        assert error(forged.get(path), 401)["code"] == "unauthenticated"
    with service.client("viewer") as viewer:
        missing = error(viewer.get("/api/v1/executions/no-such-id-hot"), 404)
        assert missing["code"] == "not_found" and "no-such-id-hot" in missing["message"]
        too_long = error(viewer.get("/api/v1/executions/" + "x" * 201), 422)
        assert too_long["code"] == "invalid_input"
        assert viewer.get(path + "/").status_code in (307, 404)  # not this route


def test_plain_reads_are_timed_under_the_route(service: Service) -> None:
    with service.client("admin") as admin:
        made = start(admin, push(admin, APPROVAL))["id"]
    with service.client("viewer") as viewer:
        route = "/api/v1/executions/{id}"
        before = timed(viewer, "GET", route, "200")
        for _ in range(3):
            assert viewer.get(f"/api/v1/executions/{made}").status_code == 200
        assert timed(viewer, "GET", route, "200") >= before + 3


def test_a_change_committed_by_another_process_is_in_the_next_read(
    db_url: str, tmp_path: Path
) -> None:
    """The server keeps each document's bytes; the test process, another process with
    its own connections and no share in the server's notifications, cancels executions
    the server has just served. Every read after the commit shows the cancel."""
    with launch(db_url, tmp_path, "--no-workers") as server, server.client("admin") as http:
        name = push(http, APPROVAL)
        for _ in range(3):
            made = start(http, name)["id"]
            path = f"/api/v1/executions/{made}"
            for _ in range(2):  # the second answer comes from the kept bytes
                assert http.get(path).json()["runtimeStatus"] == "NotStarted"
            after = asyncio.run(_cancel_elsewhere(db_url, made))
            assert after["runtimeStatus"] == "Cancelled"
            assert http.get(path).json() == after


async def _cancel_elsewhere(db_url: str, execution_id: str) -> dict[str, object]:
    async with App(db_url) as app:
        request = CancelExecution(id=execution_id, by=unique("elsewhere"), settle=True)
        return dict(await app.executions.cancel(request))

"""Webhooks over HTTP through ``flowledger serve``: triggers in (202/401/404/413, replays)
and subscriptions out (CRUD by role, a real receiver down for a while, then up)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from tests.api.conftest import Service, fresh_database, launch
from tests.api.helpers import error, push, settled, unique
from tests.pg import BACKENDS
from tests.worker.receiver import receiver

SECRET = "whsec_" + base64.b64encode(b"api-hook-secret-0123456789abcdef").decode()
SIGNED = """
name: {name}
triggers:
  - {{type: webhook, path: "{name}/in", secret_env: API_HOOK_SECRET}}
output: {{hello: "{{{{ input.who }}}}", via: "{{{{ trigger.queryParams.via }}}}"}}
steps:
  - {{id: a, type: sys.transform, input: {{value: 1}}}}
"""
OK = """
name: {name}
steps:
  - {{id: a, type: sys.transform, input: {{value: 1}}}}
"""


@pytest.fixture(scope="module", params=BACKENDS)
def hooked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """A server whose environment holds the hook secret, a 4 KiB hook body limit and a
    fast delivery retry schedule."""
    folder = tmp_path_factory.mktemp(f"hooks-{request.param}")
    env = {
        "API_HOOK_SECRET": SECRET,
        "FLOWLEDGER_HOOK_BODY_LIMIT": "4KiB",
        "FLOWLEDGER_DELIVERY_RETRY_INITIAL": "50ms",
        "FLOWLEDGER_DELIVERY_RETRY_MAX": "200ms",
    }
    with (
        fresh_database(request, request.param, folder) as db_url,
        launch(db_url, folder, env=env) as running,
    ):
        yield running


def sign(body: bytes, msg_id: str, secret: str = SECRET) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
    }


def test_a_signed_hook_answers_202_and_the_workflow_runs(hooked: Service) -> None:
    with hooked.client("admin") as http:
        name = push(http, SIGNED, unique("hooked"))
        body = json.dumps({"who": "Ada"}).encode()
        answer = http.post(f"/hooks/{name}/in", params={"via": "api"}, content=body,
                           headers=sign(body, "msg_api_1"))  # fmt: skip
        assert answer.status_code == 202, answer.text
        receipt = answer.json()
        assert receipt["workflow"] == name and receipt["duplicate"] is False
        again = http.post(f"/hooks/{name}/in", content=body, headers=sign(body, "msg_api_1"))
        assert again.status_code == 202
        assert again.json()["executionId"] == receipt["executionId"]
        assert again.json()["duplicate"] is True
        done = settled(http, receipt["executionId"])
        assert done["runtimeStatus"] == "Completed"
        assert done["output"] == {"hello": "Ada", "via": "api"}
        assert done["createdBy"] == f"webhook:{name}/in"


def test_hook_errors_start_nothing(hooked: Service) -> None:
    with hooked.client() as http, hooked.client("viewer") as viewer:
        with hooked.client("admin") as admin:
            name = push(admin, SIGNED, unique("hooked"))
        body = b'{"who": "Mallory"}'
        wrong = sign(body, "msg_bad", secret="whsec_" + base64.b64encode(b"x" * 32).decode())
        found = error(http.post(f"/hooks/{name}/in", content=body, headers=wrong), 401)
        assert found["code"] == "unauthenticated" and "signature" in found["message"]
        stale = {**sign(body, "msg_old"), "webhook-timestamp": str(int(time.time()) - 600)}
        found = error(http.post(f"/hooks/{name}/in", content=body, headers=stale), 401)
        assert "5 minutes" in found["message"]
        error(http.post(f"/hooks/{name}/in", content=body), 401)  # not signed at all
        # A webhook-id twice (the signed one and another): refused, not one of them taken.
        twice = [*sign(body, "msg_one").items(), ("webhook-id", "msg_two")]
        found = error(http.post(f"/hooks/{name}/in", content=body, headers=twice), 400)
        assert found["message"] == "headers.webhook-id: sent 2 times; send the header once"
        error(http.post("/hooks/no/such/path", content=body), 404)
        big = b'{"who": "' + b"x" * 5000 + b'"}'
        found = error(http.post(f"/hooks/{name}/in", content=big, headers=sign(big, "m")), 413)
        assert found["details"]["limit"] == 4096
        listed = viewer.get("/api/v1/executions", params={"workflow": name}).json()
        assert listed["items"] == []


def test_a_disabled_workflows_hook_asks_for_the_delivery_again(hooked: Service) -> None:
    """It answered 404, which senders take as gone for good: deliveries made while the
    workflow was disabled were lost. Now 503 with Retry-After; once enabled, it starts."""
    with hooked.client("admin") as http:
        name = push(http, SIGNED, unique("paused"))
        assert http.post(f"/api/v1/workflows/{name}/disable").status_code == 200
        body = b'{"who": "Later"}'
        answer = http.post(f"/hooks/{name}/in", content=body, headers=sign(body, "msg_p"))
        assert error(answer, 503)["code"] == "unavailable"
        assert answer.headers["Retry-After"] == "60"
        assert http.post(f"/api/v1/workflows/{name}/enable").status_code == 200
        again = http.post(f"/hooks/{name}/in", params={"via": "retry"}, content=body,
                          headers=sign(body, "msg_p"))  # fmt: skip
        assert again.status_code == 202, again.text
        assert settled(http, again.json()["executionId"])["runtimeStatus"] == "Completed"


def test_subscriptions_crud_by_role(hooked: Service) -> None:
    spec = {"url": "http://127.0.0.1:9/x", "events": ["execution.failed"]}
    with hooked.client("operator") as operator:
        assert error(operator.post("/api/v1/subscriptions", json=spec), 403)["code"] == "forbidden"
    with hooked.client("admin") as admin:
        created = admin.post("/api/v1/subscriptions", json={**spec, "workflow": "w"})
        assert created.status_code == 201, created.text
        sub = created.json()
        assert sub["secret"].startswith("whsec_") and sub["createdBy"] == "api-token:t-admin"
        listed = admin.get("/api/v1/subscriptions").json()["items"]
        assert sub["id"] in {s["id"] for s in listed}
        assert all("secret" not in s for s in listed)
        assert admin.get(f"/api/v1/subscriptions/{sub['id']}").json()["workflow"] == "w"
        deliveries = admin.get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json()
        assert deliveries == {"items": [], "nextCursor": None}
        assert admin.get(f"/api/v1/subscriptions/{sub['id']}").json()["url"] == spec["url"]
        # Every token reads them (SPEC: viewer reads); a URL is often a credential
        # itself, so below admin it shows only its origin.
        with hooked.client("viewer") as viewer:
            seen = viewer.get(f"/api/v1/subscriptions/{sub['id']}").json()
            assert seen["url"] == "http://127.0.0.1:9/…" and seen["workflow"] == "w"
            shown = {s["id"]: s["url"] for s in viewer.get("/api/v1/subscriptions").json()["items"]}
            assert shown[sub["id"]] == "http://127.0.0.1:9/…"
            assert viewer.get(f"/api/v1/subscriptions/{sub['id']}/deliveries").status_code == 200
            error(viewer.delete(f"/api/v1/subscriptions/{sub['id']}"), 403)
        bad = admin.post("/api/v1/subscriptions", json={**spec, "events": ["execution.exploded"]})
        error(bad, 422)
        refused = admin.post(
            "/api/v1/subscriptions", json={**spec, "url": "http://169.254.169.254/"}
        )
        assert error(refused, 422)["details"]["field"] == "url"
        assert admin.delete(f"/api/v1/subscriptions/{sub['id']}").status_code == 204
        error(admin.delete(f"/api/v1/subscriptions/{sub['id']}"), 404)
        error(admin.get(f"/api/v1/subscriptions/{sub['id']}/deliveries"), 404)


def test_a_receiver_down_for_a_while_gets_each_event_once(hooked: Service) -> None:
    with receiver() as hook, hooked.client("admin") as http:
        name = push(http, OK, unique("notified"))
        sub = http.post("/api/v1/subscriptions", json={
            "url": hook.url, "events": ["execution.completed"], "workflow": name}).json()  # fmt: skip
        hook.down = True
        ids = []
        for _ in range(3):
            started = http.post(f"/api/v1/workflows/{name}/executions", json={"input": {}})
            assert started.status_code == 201, started.text
            ids.append(started.json()["id"])
        for execution_id in ids:
            assert settled(http, execution_id)["runtimeStatus"] == "Completed"
        wait_for(lambda: hook.refused >= 3)
        hook.down = False

        def delivered() -> bool:
            items = http.get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json()["items"]
            return len(items) == 3 and all(d["status"] == "delivered" for d in items)

        wait_for(delivered)
        assert sorted(hook.accepted.values()) == [1, 1, 1]
        webhook = Webhook(sub["secret"])
        got = {webhook.verify(r.body, r.headers)["data"]["executionId"]
               for r in hook.first_accepted().values()}  # fmt: skip
        assert got == set(ids)
        items = http.get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json()["items"]
        assert all(d["attempts"] >= 2 and d["lastStatusCode"] == 200 for d in items)


def wait_for(check: object, timeout: float = 30.0) -> None:
    """Wait for a condition (a bound against hanging, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)

"""Step logs and workflow operations over HTTP (the same application operations as the
CLI's `executions logs` and `workflows disable|enable|delete|backfill`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.api.conftest import Service
from tests.api.helpers import error, push, settled, unique
from tests.cli.test_ops_cli import PLUGIN, TALKER

HOURLY = """
name: {name}
triggers:
  - {{type: schedule, cron: "0 * * * *", timezone: UTC}}
steps:
  - {{id: s, type: sys.transform, input: {{value: 1}}}}
"""


def test_step_logs_of_an_execution(service: Service, tmp_path: Path) -> None:
    plugin = tmp_path / "ops_plugin.py"
    plugin.write_text(PLUGIN)
    talker = tmp_path / "talker.yaml"
    text = TALKER.replace("talker", unique("talker")).replace("{{ secrets.OPS_TOKEN }}", "x")
    talker.write_text(text)
    ran = service.cli("run", str(talker), "--plugin", str(plugin), "--json")
    assert ran.returncode == 0, ran.stderr
    execution_id = json.loads(ran.stdout)["id"]
    with service.client("viewer") as http:
        url = f"/api/v1/executions/{execution_id}/logs"
        page = http.get(url).json()
        assert [(line["stepId"], line["level"]) for line in page["items"]] == [
            ("talk", "INFO"),
            ("talk", "INFO"),
            ("talk", "ERROR"),
        ]
        assert page["nextCursor"] is None
        first = http.get(url, params={"limit": 1}).json()
        assert len(first["items"]) == 1 and first["nextCursor"] == str(first["items"][0]["id"])
        rest = http.get(url, params={"cursor": first["nextCursor"]}).json()
        assert [line["id"] for line in rest["items"]] == [i["id"] for i in page["items"][1:]]
        assert http.get(url, params={"after": first["items"][0]["id"]}).json() == rest
        assert error(http.get(url, params={"cursor": "x1"}), 400)["code"] == "invalid_cursor"
        assert http.get(url, params={"step": "quiet"}).json()["items"] == []
        assert error(http.get(url, params={"limit": 0}), 422)
        assert error(http.get("/api/v1/executions/no-such/logs"), 404)


def test_disable_enable_delete_and_backfill(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HOURLY)
        off = http.post(f"/api/v1/workflows/{name}/disable")
        assert off.status_code == 200 and off.json() == {
            "name": name,
            "enabled": False,
            "changed": True,
        }
        listed = {w["name"]: w for w in http.get("/api/v1/workflows").json()["items"]}
        assert listed[name]["enabled"] is False
        on = http.post(f"/api/v1/workflows/{name}/enable", params={"catchUp": "true"})
        assert on.json()["enabled"] is True

        day = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        body = {"from": day.isoformat(), "to": (day + timedelta(hours=1)).isoformat()}
        filled = http.post(f"/api/v1/workflows/{name}/backfill", json=body)
        assert filled.status_code == 201, filled.text
        assert [t["duplicate"] for t in filled.json()] == [False, False]
        again = http.post(f"/api/v1/workflows/{name}/backfill", json=body).json()
        assert [t["executionId"] for t in again] == [t["executionId"] for t in filled.json()]
        assert error(http.post(f"/api/v1/workflows/{name}/backfill", json={"from": 1}), 422)

        for tick in again:  # the server's own workers run them
            assert settled(http, tick["executionId"])["runtimeStatus"] == "Completed"
        gone = http.delete(f"/api/v1/workflows/{name}")
        assert gone.json() == {"name": name, "unfinished": 0, "versionsKept": 1}
        assert error(http.delete(f"/api/v1/workflows/{name}"), 404)
        assert error(http.post(f"/api/v1/workflows/{name}/disable"), 404)

"""`/job-runs` through the real server: a job run sent over HTTP names pushed workflows
only, never the server's files; a failed job run is resumed by retrying it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Service, launch
from tests.api.helpers import APPROVAL, HELLO, error, push, unique

pytestmark = pytest.mark.e2e

#: A definition left in the server's working folder, never pushed.
LOCAL_DEFINITION = """
name: never-pushed
steps:
  - {id: a, type: sys.transform, input: {value: from the file}}
"""
#: A file with secrets in the server's working folder, shaped to fail as a definition.
CREDENTIALS = 'DB_PASSWORD: hunter2\nname: "postgres://u:P4ssw0rd@db/x"\nsteps: sk_live_abc\n'
PUSHED = """
name: {name}
output: {{said: "{{{{ steps.a.output }}}}"}}
steps:
  - {{id: a, type: sys.transform, input: {{value: pushed}}}}
"""


def _job(*workflows: str) -> str:
    return json.dumps({"name": "j", "workflows": [{"workflow": w} for w in workflows]})


def test_a_job_run_sent_over_http_never_reads_the_servers_files(tmp_path: Path) -> None:
    """The server's folder held an extensionless definition, which such a job run
    registered and ran (no admin pushed it), and a credentials file, whose existence and
    content its parse errors showed."""
    here = tmp_path / "cwd"
    here.mkdir()
    (here / "localdef").write_text(LOCAL_DEFINITION)
    (here / "creds").write_text(CREDENTIALS)
    db_url = f"sqlite:///{tmp_path / 'serve.db'}"
    with launch(db_url, tmp_path, cwd=here) as service:
        with service.client("operator") as http:
            answers = {
                name: error(http.post("/api/v1/job-runs", content=_job(name)), 422)
                for name in ("localdef", "creds", "nosuchfile")
            }
            for name, found in answers.items():
                assert found["code"] == "invalid_definition"
                assert found["message"] == (
                    f"<request>:1:42: workflows[0].workflow: there is no workflow named "
                    f"{name!r}; push it first (flowledger workflows push FILE)"
                )
            # An existing file answers as a missing one does: nothing of it shows.
            said = json.dumps(answers)
            for secret in ("hunter2", "P4ssw0rd", "sk_live", "DB_PASSWORD", "never-pushed"):
                assert secret not in said
            assert http.get("/api/v1/workflows").json()["items"] == []
            assert http.get("/api/v1/job-runs").json()["items"] == []
            # A name that looks like a file says why it is not read.
            found = error(http.post("/api/v1/job-runs", content=_job("creds.yaml")), 422)
            assert found["message"].endswith(
                "; a job run sent as text names pushed workflows, never files"
            )

            # A pushed workflow named like the file is the one that runs.
            with service.client("admin") as admin:
                push(admin, PUSHED, "localdef")
            answer = http.post("/api/v1/job-runs", content=_job("localdef"))
            assert answer.status_code == 201, answer.text
            doc = _until(http, answer.json()["id"], "Completed")
            [run] = doc["runs"]
            assert (run["workflowName"], run["workflowVersion"]) == ("localdef", 1)
            execution = http.get(f"/api/v1/executions/{run['executionId']}").json()
            assert execution["output"] == {"said": "pushed"}
            names = [w["name"] for w in http.get("/api/v1/workflows").json()["items"]]
            assert names == ["localdef"]
        assert "Traceback" not in service.output()


#: Fails until its entity type exists: the fix a retry runs after.
NEEDS = """
name: {name}
steps:
  - {{id: put, type: sys.create_entity, input: {{entity_type: {name}_T, payload: {{}}}}}}
"""


def test_retrying_a_failed_job_run_resumes_it_from_its_failed_workflow(
    service: Service,
) -> None:
    with service.client("admin") as admin, service.client("operator") as http:
        needs, hello = push(admin, NEEDS, unique("needs")), push(admin, HELLO)
        job = {
            "name": "nightly",
            "workflows": [{"workflow": needs}, {"workflow": hello, "input": {"who": "Ann"}}],
        }
        created = http.post("/api/v1/job-runs", content=json.dumps(job)).json()
        failed = _until(http, created["id"], "Failed")
        assert [r["runtimeStatus"] for r in failed["runs"]] == ["Failed", None]
        answer = admin.post("/api/v1/entity-types", json={"name": f"{needs}_T"})
        assert answer.status_code == 201, answer.text

        answer = http.post(f"/api/v1/job-runs/{created['id']}/retry")
        assert answer.status_code == 200, answer.text
        # Open again (the workers may have finished it already).
        assert answer.json()["status"] in ("InProgress", "Completed"), answer.text
        done = _until(http, created["id"], "Completed", "Failed")
        assert done["status"] == "Completed"
        assert [r["runtimeStatus"] for r in done["runs"]] == ["Completed", "Completed"]
        assert done["runs"][0]["executionId"] == failed["runs"][0]["executionId"]

        again = error(http.post(f"/api/v1/job-runs/{created['id']}/retry"), 409)
        assert again["message"].endswith("is Completed: only a Failed job run is retried")
        error(http.post("/api/v1/job-runs/no-such-job/retry"), 404)


def test_cancelling_a_job_run_ends_it_cancelled(service: Service) -> None:
    """The web and `jobs cancel` could cancel a job run; the API could not."""
    with service.client("admin") as admin, service.client("operator") as http:
        waits, hello = push(admin, APPROVAL), push(admin, HELLO)
        second = {"workflow": hello, "input": {"who": "Ann"}}
        job = {"name": "j", "workflows": [{"workflow": waits}, second]}
        answer = http.post("/api/v1/job-runs", content=json.dumps(job))
        assert answer.status_code == 201, answer.text
        created = answer.json()
        url = f"/api/v1/job-runs/{created['id']}/cancel"
        _until_waiting(http, created["id"])
        with service.client("viewer") as viewer:
            assert error(viewer.post(url), 403)["code"] == "forbidden"

        # The answer does not wait for the process that runs the workflow: 202 until
        # the cancel lands (the service's workers take it).
        answer = http.post(url, json={"reason": "not tonight"})
        assert answer.status_code in (200, 202), answer.text
        assert (answer.status_code == 200) == (answer.json()["status"] == "Cancelled")
        done = _until(http, created["id"], "Cancelled")
        assert [r["runtimeStatus"] for r in done["runs"]] == ["Cancelled", None]
        execution = http.get(f"/api/v1/executions/{done['runs'][0]['executionId']}").json()
        assert execution["runtimeStatus"] == "Cancelled"
        cancelled = [
            e for e in http.get(f"/api/v1/executions/{execution['id']}/events").json()
            if e["kind"] == "execution.cancelled"
        ]  # fmt: skip
        assert "not tonight" in json.dumps(cancelled), cancelled
        assert "api-token:t-operator" in json.dumps(cancelled), cancelled

        again = error(http.post(url), 409)
        assert again["message"] == f"job run {created['id']} already ended: Cancelled"
        error(http.post("/api/v1/job-runs/no-such-job/cancel"), 404)
        # As an execution's cancel: no body, {} and null are all no reason.
        for sent in ({}, {"json": {}}, {"content": b"null"}):
            other = http.post("/api/v1/job-runs", content=json.dumps(job)).json()
            _until_waiting(http, other["id"])
            headers = {"Content-Type": "application/json"} if "content" in sent else {}
            answer = http.post(f"/api/v1/job-runs/{other['id']}/cancel", headers=headers, **sent)
            assert answer.status_code in (200, 202), (sent, answer.text)
            assert _until(http, other["id"], "Cancelled")["status"] == "Cancelled"


def _until_waiting(http: httpx.Client, job_run_id: str) -> None:
    """Until the job run's first workflow waits for input."""
    deadline = time.monotonic() + 30
    while True:
        runs = http.get(f"/api/v1/job-runs/{job_run_id}").json()["runs"]
        if runs[0]["runtimeStatus"] == "AwaitingUserInput" or time.monotonic() > deadline:
            assert runs[0]["runtimeStatus"] == "AwaitingUserInput", runs
            return
        time.sleep(0.05)


def _until(http: httpx.Client, job_run_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        doc: dict[str, Any] = http.get(f"/api/v1/job-runs/{job_run_id}").json()
        if doc["status"] in statuses or time.monotonic() > deadline:
            assert doc["status"] in statuses, doc
            return doc
        time.sleep(0.05)


def test_a_job_run_with_an_idempotency_key_is_created_once(service: Service) -> None:
    """The key was ignored: a client retrying after a timeout created a second job run
    (tour 22C F2)."""
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        job = json.dumps(
            {"name": unique("j"), "workflows": [{"workflow": name, "input": {"who": "A"}}]}
        )
        key = {"Idempotency-Key": unique("job"), "Content-Type": "application/json"}
        first = http.post("/api/v1/job-runs", content=job, headers=key)
        again = http.post("/api/v1/job-runs", content=job, headers=key)
        assert (first.status_code, again.status_code) == (201, 201), again.text
        assert again.json()["id"] == first.json()["id"]
        other = error(
            http.post("/api/v1/job-runs", content=job.replace('"A"', '"B"'), headers=key), 409
        )
        assert other["message"].startswith(f"the idempotency key {key['Idempotency-Key']!r} "
                                           f"created job run {first.json()['id']} of another job")  # fmt: skip
        bad = error(
            http.post(
                "/api/v1/job-runs", content=job, headers={**key, "Idempotency-Key": "k" * 161}
            ),
            422,
        )
        assert bad["details"]["field_path"] == ["Idempotency-Key"]
        executions = http.get("/api/v1/executions", params={"workflow": name}).json()["items"]
        assert len(executions) == 1

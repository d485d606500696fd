"""``flowledger serve`` as a process: health, readiness, docs, tokens at start, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from flowledger.api.routes.executions import CONTROL_WAIT
from tests.api.conftest import (
    FLOWLEDGER,
    REPO,
    STOP_TIMEOUT,
    Service,
    free_port,
    launch,
    service_env,
)
from tests.api.helpers import APPROVAL, push, settled, start, terminal
from tests.inprocess import run_in_process


def test_health_and_readiness_need_no_token(service: Service) -> None:
    with service.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready"}
        for path in ("/healthz", "/readyz"):  # probes that ask with HEAD
            head = http.head(path)
            assert head.status_code == 200 and head.content == b"", path


def test_openapi_and_docs_need_no_token_and_no_cdn(service: Service) -> None:
    with service.client() as http:
        document = http.get("/api/v1/openapi.json").json()
        page = http.get("/api/v1/docs")
    assert "/api/v1/workflows" in document["paths"]
    assert page.status_code == 200 and "/api/v1/workflows" in page.text
    assert "cdn" not in page.text.lower() and "<script" not in page.text


def test_api_routes_need_a_token(service: Service) -> None:
    with service.client() as http:
        answer = http.get("/api/v1/workflows")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


def test_unknown_route_answers_in_the_error_shape(service: Service) -> None:
    with service.client("viewer") as http:
        answer = http.get("/api/v1/no-such-thing")
    assert answer.status_code == 404
    assert set(answer.json()["error"]) == {"code", "message", "details"}


def test_sigterm_exits_0_after_requests_and_ends_open_event_streams_at_once(
    backend_db: str, tmp_path: Path
) -> None:
    """An open event stream (a web page's, an API follower's) never finishes by itself:
    serve waited its whole 30 s grace for it, then cancelled it with ERROR tracebacks.
    One server start for two tests: requests answered, then SIGTERM exits 0."""
    with (
        launch(backend_db, tmp_path) as running,
        running.client("admin") as api,
        running.client() as browser,
    ):
        with running.client("viewer") as http:
            assert http.get("/api/v1/workflows").status_code == 200
        waiting = start(api, push(api, APPROVAL))["id"]
        assert settled(api, waiting)["runtimeStatus"] == "AwaitingUserInput"
        signed_in = browser.post("/signin", data={"token": running.tokens["viewer"]})
        assert signed_in.status_code == 303, signed_in.text
        sse = {"Accept": "text/event-stream"}
        with (
            api.stream("GET", f"/api/v1/executions/{waiting}/events", headers=sse) as events,
            browser.stream("GET", "/ui/live", headers=sse) as live,
        ):
            opened = [events.iter_bytes(), live.iter_bytes()]
            assert all(next(chunks).startswith(b"retry: ") for chunks in opened)
            running.process.send_signal(signal.SIGTERM)
            for chunks in opened:
                for _ in chunks:  # to its end: the server ends it
                    pass
        # A bound against hanging well under the grace, not a speed claim.
        assert running.process.wait(20) == 0
    log = running.output()
    assert "graceful shutdown exceeded" not in log and "Traceback" not in log, log
    assert " ERROR " not in log, log


def test_no_workers_serves_the_api_only_and_a_cancel_nobody_acts_on_is_accepted_and_pending(
    backend_db: str, tmp_path: Path
) -> None:
    """With no worker anywhere, a cancel of a waiting execution answered 200 with the
    document as it was (``AwaitingUserInput``), as if that were the cancel's outcome: it
    is 202 with ``pendingSignals`` after the API's wait; a worker then acts on it. One
    server start for two tests: ``--no-workers`` serves the API, and runs nothing."""
    with launch(backend_db, tmp_path, "--no-workers") as running, running.client("admin") as http:
        with running.client("viewer") as viewer:
            assert viewer.get("/api/v1/workflows").status_code == 200
        name = push(http, APPROVAL)
        doc = start(http, name)
        begun = time.monotonic()
        answer = http.post(f"/api/v1/executions/{doc['id']}/cancel", json={"reason": "no"})
        assert answer.status_code == 202, answer.text
        assert answer.json()["pendingSignals"] == 1
        assert answer.json()["runtimeStatus"] == "NotStarted"  # true: nobody took it yet
        assert time.monotonic() - begun >= CONTROL_WAIT - 0.5
        # The execution read says so too, not only that answer (tour 19, F10).
        read = http.get(f"/api/v1/executions/{doc['id']}")
        assert read.json()["pendingSignals"] == 1, read.text
        worker = subprocess.Popen(
            [FLOWLEDGER, "worker", "--db", backend_db], env=running.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            ended = terminal(http, doc["id"])
            assert ended["runtimeStatus"] == "Cancelled" and "pendingSignals" not in ended
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(STOP_TIMEOUT) == 0


def test_non_loopback_host_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    """In this process (tests/inprocess.py): it refuses before it listens or runs anything."""
    env = service_env(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path)
    args = ("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    done = run_in_process(args, env=env, cwd=REPO)
    assert done.returncode == 2
    assert "without an API token" in done.stderr


def test_a_token_revoked_elsewhere_is_refused_within_a_second(service: Service) -> None:
    """Elsewhere: the ``tokens`` commands run in this process, not the server's."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_in_process(args, env=service.env, cwd=REPO)

    made = cli("tokens", "create", "short-lived", "--role", "viewer")
    token = made.stdout.strip()
    with service.client(token=token) as http:
        assert http.get("/api/v1/workflows").status_code == 200
        revoked = time.monotonic()
        assert cli("tokens", "revoke", "short-lived").returncode == 0
        # the server trusts a token it read for a second (app.tokens.RECHECK)
        while http.get("/api/v1/workflows").status_code == 200:
            assert time.monotonic() - revoked < 5, "the revoked token still works"
            time.sleep(0.05)
        assert http.get("/api/v1/workflows").status_code == 401
    listed = cli("tokens", "list", "--json")
    assert "short-lived" in listed.stdout and token not in listed.stdout


def test_loopback_without_tokens_says_how_to_create_one_in_json_logs_with_uvicorn_s_lines(
    tmp_path: Path,
) -> None:
    """Two tests folded into one server start: a loopback server without tokens answers
    401 and its log says how to create one; JSON logs cover uvicorn's own lines."""
    env = {"FLOWLEDGER_LOG_FORMAT": "json"}
    db_url = f"sqlite:///{tmp_path / 'j.db'}"
    with launch(db_url, tmp_path, tokens=False, env=env) as running, running.client() as http:
        assert http.get("/api/v1/workflows").status_code == 401
        deadline = time.monotonic() + 30  # a bound against hanging, not a speed claim
        while "flowledger tokens create" not in running.output():
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.05)
        assert http.get("/healthz").status_code == 200
        assert http.get("/no-such-page").status_code == 404
    lines = [json.loads(line) for line in running.output().splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert {"flowledger.serve", "uvicorn.error", "uvicorn.access"} <= loggers, loggers
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in message for message in access), access
    assert all(line["level"] == "INFO" for line in lines if line["logger"] == "uvicorn.access")
    assert any("flowledger tokens create" in line["message"] for line in lines)


def test_log_format_json_on_the_command_line_and_serving_only_once_listening(
    tmp_path: Path,
) -> None:
    """serve had no --log-format (worker had), and it logged "serving on …" before a
    port in use failed it: now the line comes once the socket is bound, with the port
    it is bound to, and a busy port is said in JSON lines, exit 1, no traceback."""
    db_url = f"sqlite:///{tmp_path / 'j.db'}"
    with launch(db_url, tmp_path, "--log-format", "json", "--no-workers") as running:
        pass
    lines = [json.loads(line) for line in running.output().splitlines() if line.strip()]
    port = running.base_url.rsplit(":", 1)[1]
    serving = [line["message"] for line in lines if line["message"].startswith("serving on")]
    assert serving == [f"serving on http://127.0.0.1:{port} (API only)"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        done = subprocess.run(
            [FLOWLEDGER, "serve", "--port", str(busy), "--log-format", "json"],
            capture_output=True, text=True, cwd=REPO, env=service_env(db_url, tmp_path),
            timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line JSON
    assert not any(line["message"].startswith("serving on") for line in lines), lines
    assert "address already in use" in " ".join(line["message"] for line in lines)
    assert (lines[-1]["action"], lines[-1]["message"]) == (
        "exit",
        f"could not listen on 127.0.0.1:{busy}",
    )
    assert "Traceback" not in done.stderr

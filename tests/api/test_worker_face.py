"""``flowledger worker`` reports like ``serve``: ``--metrics-port`` serves Prometheus
``/metrics`` (counted by the same instruments) and the health routes, nothing else; its
log names the database without the password."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from tests import tls
from tests.api.conftest import FLOWLEDGER, free_port, run_cli, service_env
from tests.api.helpers import HELLO
from tests.conftest import REPO
from tests.inprocess import run_in_process
from tests.pg import PASSWORD, PASSWORD_USER, TEMPLATE_DB, Cluster
from tests.worker.receiver import receiver

FINISHED = re.compile(
    r'flowledger_executions_finished_total\{status="Completed",workflow="hello-worker"\} 1\.0'
)


@contextmanager
def worker(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A running ``flowledger worker``; it must exit 0 on SIGTERM afterwards."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [FLOWLEDGER, "worker", "--concurrency", "1", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(45)
    assert code == 0, log.read_text()


def _answer(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2, verify=tls.CONTEXT)
    except httpx.TransportError:
        return None


def _until(check: Callable[[], bool], what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in time:\n{log.read_text()}")
        time.sleep(0.05)


def _queue_one(env: dict[str, str], folder: Path) -> None:
    """Push and start one execution for the worker, in this process (the commands are
    not what is tested here; a process each cost seconds)."""
    definition = folder / "hello.yaml"
    definition.write_text(textwrap.dedent(HELLO.format(name="hello-worker")))
    for args in (
        ("workflows", "push", str(definition)),
        ("start", "hello-worker", "--input", '{"who": "w"}'),
    ):
        done = run_in_process(args, env=env, cwd=REPO)
        assert done.returncode == 0, done.stderr


def _traced_env(db_url: str, folder: Path, collector: str) -> dict[str, str]:
    """FLOWLEDGER_OTEL=1 with the spans sent to ``collector``."""
    return service_env(
        db_url, folder, FLOWLEDGER_OTEL="1", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector
    )


def test_the_worker_serves_its_metrics_and_sends_its_spans_over_otlp(
    backend_db: str, tmp_path: Path
) -> None:
    """One worker for both reports (a worker's start cost seconds): metrics while it
    runs, the batched spans flushed on its way out."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    with receiver() as collector:
        env = _traced_env(backend_db, tmp_path, collector.url)
        _queue_one(env, tmp_path)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / "worker.log"
        with worker(env, log, "--metrics-port", str(port)):
            _until(lambda: _answer(f"{base}/healthz") is not None, "the metrics port", log)

            def finished() -> bool:
                answer = _answer(f"{base}/metrics")
                return answer is not None and bool(FINISHED.search(answer.text))

            _until(finished, "the execution finishing in /metrics", log)
            metrics = httpx.get(f"{base}/metrics", verify=tls.CONTEXT)
            assert metrics.headers["content-type"].startswith("text/plain")
            assert (
                'flowledger_executions_started_total{workflow="hello-worker"} 1.0' in metrics.text
            )
            assert "flowledger_queue_depth" in metrics.text
            assert httpx.get(f"{base}/readyz", verify=tls.CONTEXT).json() == {"status": "ready"}
            assert (
                httpx.get(f"{base}/api/v1/executions", verify=tls.CONTEXT).status_code == 404
            )  # no API here
        assert f"metrics on 127.0.0.1:{port}" in log.read_text()
        # stopped: the batched spans were flushed on the way out
        sent = b"".join(r.body for r in collector.requests)
    assert b"execution hello-worker" in sent, log.read_text()
    assert b"flowledger.step_id" in sent  # the step attempt's span too


def test_run_and_jobs_run_send_their_spans_like_the_worker(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    definition = tmp_path / "hello.yaml"
    definition.write_text(textwrap.dedent(HELLO.format(name="hello-run")))
    job = tmp_path / "job.yaml"
    job.write_text("name: traced-job\nworkflows:\n  - {workflow: hello.yaml, input: {who: j}}\n")
    for args in (("run", str(definition), "--input", '{"who": "r"}'), ("jobs", "run", str(job))):
        with receiver() as collector:
            env = _traced_env(f"sqlite:///{tmp_path / 'traced.db'}", tmp_path, collector.url)
            done = run_cli(env, *args)
            assert done.returncode == 0, done.stderr
            # ended: the batched spans were flushed on the way out
            sent = b"".join(r.body for r in collector.requests)
        assert b"execution hello-run" in sent, (args, done.stderr)
        assert b"flowledger.step_id" in sent


def test_run_without_the_tracing_packages_refuses_like_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    definition = tmp_path / "hello.yaml"
    definition.write_text(textwrap.dedent(HELLO.format(name="hello-run")))
    env = service_env(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, FLOWLEDGER_OTEL="1")
    for args in (("run", str(definition), "--input", '{"who": "r"}'), ("worker",)):
        done = run_in_process(args, env=env, cwd=REPO)
        assert done.returncode == 2, (args, done.stderr)
        assert "pip install 'flowledger[otel]'" in done.stderr, done.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    env = service_env(f"sqlite:///{tmp_path / 'w.db'}", tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_in_process(("worker", "--metrics-port", str(port)), env=env, cwd=REPO)
    assert done.returncode == 1, done.stderr
    assert f"could not serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.postgresql
def test_the_worker_log_masks_the_database_password(pg_cluster: Cluster, tmp_path: Path) -> None:
    name = pg_cluster.create_database(TEMPLATE_DB)
    try:
        with psycopg.connect(pg_cluster.url(name), autocommit=True) as owner:
            for what in ("TABLES", "SEQUENCES"):
                owner.execute(f"GRANT ALL ON ALL {what} IN SCHEMA public TO {PASSWORD_USER}")
        url = pg_cluster.url(name).replace("postgres@", f"{PASSWORD_USER}:{PASSWORD}@")
        env = service_env(url, tmp_path)
        log = tmp_path / "worker.log"
        with worker(env, log):
            _until(lambda: "concurrency 1" in log.read_text(), "the start line", log)
        text = log.read_text()
        assert f"{PASSWORD_USER}:***@127.0.0.1" in text, text
        assert PASSWORD not in text
    finally:
        pg_cluster.drop_database(name)

"""Logs: every record has execution_id, step_id and action; JSON lines on request."""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowledger.config import ConfigError, Settings
from flowledger.logs import FIELDS, configure_logging, log_extra
from tests.conftest import REPO

SRC = REPO / "src" / "flowledger"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging changes the root logger: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def test_json_lines_carry_the_three_fields(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", logging.DEBUG, stream=stream)
    log = logging.getLogger("flowledger.test")
    log.info("claimed %s", "e1", extra=log_extra("claim", "e1"))
    log.warning("no ids here")  # a call without extra (another library's, say)
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("step broke", extra=log_extra("step_failed", "e2", "enrich"))
    logging.getLogger("httpx").info("HTTP Request: GET https://x/?token=secret")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["claimed e1", "no ids here", "step broke"]
    for line in lines:
        assert {"ts", "level", "logger", "message", *FIELDS} <= set(line)
        assert line["ts"].endswith("+00:00")
    assert [(x["execution_id"], x["step_id"], x["action"]) for x in lines] == [
        ("e1", None, "claim"),
        (None, None, None),
        ("e2", "enrich", "step_failed"),
    ]
    assert "ValueError: bad" in lines[2]["exc"]
    assert "secret" not in stream.getvalue()  # httpx request URLs are not logged at INFO


def test_text_format_names_action_and_execution(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("text", "INFO", stream=stream)
    configure_logging("text", "INFO", stream=stream)  # again: still one handler
    logging.getLogger("flowledger.test").info("hi", extra=log_extra("renew_lease", "e9"))
    assert stream.getvalue().count("hi") == 1
    assert "[renew_lease e9] hi" in stream.getvalue()


def test_settings_read_the_log_format() -> None:
    assert Settings.from_env({}).log_format == "text"
    settings = Settings.from_env({"FLOWLEDGER_LOG_FORMAT": "JSON", "FLOWLEDGER_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    with pytest.raises(ConfigError, match="FLOWLEDGER_LOG_FORMAT"):
        Settings.from_env({"FLOWLEDGER_LOG_FORMAT": "xml"})


def _log_calls_without_extra(path: Path) -> list[str]:
    """``log.info(...)``-style calls (on a ``log``/``logger`` name or a ``getLogger(...)``)
    that pass no ``extra=``. LoggerAdapters (``self.logger``, ``ctx.logger``) carry theirs."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in LEVELS:
            continue
        target = node.func.value
        is_logger = (isinstance(target, ast.Name) and target.id in {"log", "logger"}) or (
            isinstance(target, ast.Call)
            and isinstance(target.func, ast.Attribute | ast.Name)
            and getattr(target.func, "attr", getattr(target.func, "id", None)) == "getLogger"
        )
        if is_logger and not any(k.arg == "extra" for k in node.keywords):
            missing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return missing


def test_every_log_call_passes_extra() -> None:
    missing = [m for path in sorted(SRC.rglob("*.py")) for m in _log_calls_without_extra(path)]
    assert missing == [], "pass extra=log_extra(action, execution_id, step_id) at: " + ", ".join(
        missing
    )


def test_the_scan_finds_a_call_without_extra(tmp_path: Path) -> None:
    sample = REPO / "tests" / "_log_scan_sample.py"
    sample.write_text("import logging\nlog = logging.getLogger(__name__)\nlog.info('x')\n")
    try:
        assert _log_calls_without_extra(sample) == ["tests/_log_scan_sample.py:3"]
    finally:
        sample.unlink()


def test_the_worker_logs_json_lines(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'w.db'}",
        "FLOWLEDGER_LOG_FORMAT": "json",
    }
    command = [str(Path(sys.executable).parent / "flowledger"), "worker", "--concurrency", "1"]
    with subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env
    ) as worker:
        try:
            assert worker.stderr is not None
            first = json.loads(worker.stderr.readline())  # the worker says it started
            worker.send_signal(signal.SIGTERM)
            rest = worker.stderr.read()
            assert worker.wait(timeout=30) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    lines = [first, *(json.loads(line) for line in rest.splitlines() if line.strip())]
    assert [line["action"] for line in lines] == ["start_worker", "stop_worker"]
    for line in lines:
        assert line["level"] == "INFO" and line["logger"] == "flowledger.worker"
        assert line["execution_id"] is None and line["step_id"] is None

"""Logging: every record carries ``execution_id``, ``step_id`` and ``action``.

Call sites pass them with :func:`log_extra` (procrastinate's habit)::

    log.warning("lost the lease of execution %s", execution_id,
                extra=log_extra("renew_lease", execution_id))

:class:`ContextFilter` fills whatever a record lacks with ``None`` (records of other
libraries included), so a formatter can always name the three fields.
:func:`configure_logging` sets the root logger up once for a process (the CLI calls
it): ``text`` for people, ``json`` (one object per line) for log pipelines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: The fields every record carries (None when they do not apply).
FIELDS = ("execution_id", "step_id", "action")
#: Fields some records carry (the worker's per-execution lines); JSON shows them if set.
OPTIONAL_FIELDS = ("workflow", "status", "duration_ms", "attempt")

#: Loggers that log request URLs at INFO; URLs can carry secrets (tokens in queries).
QUIET_LOGGERS = ("httpx", "httpcore")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(action)s %(execution_id)s] %(message)s"


def log_extra(
    action: str, execution_id: str | None = None, step_id: str | None = None, **more: Any
) -> dict[str, Any]:
    """The ``extra=`` of a log call: what is being done, to which execution and step."""
    return {"action": action, "execution_id": execution_id, "step_id": step_id, **more}


class ContextFilter(logging.Filter):
    """Give every record the three fields, ``None`` where the call site had none."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the three fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            doc[name] = getattr(record, name, None)
        for name in OPTIONAL_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def exception_line(exc: BaseException) -> str:
    """An exception in one line (its type and its message's first line), for a log line
    that repeats a failure already logged with its traceback."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def configure_logging(
    format: LogFormat = "text", level: int | str = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Send the process's logs to ``stream`` (stderr) in ``format``; returns the handler.

    Calling it again replaces the handler it installed before (tests, re-configuration).
    """
    if format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("flowledger")
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "flowledger"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def writes_json() -> bool:
    """Whether the process's logs go out as JSON lines (``configure_logging("json")``):
    then a command's last words (an ``error:`` line) must be a JSON line too."""
    return any(
        h.get_name() == "flowledger" and isinstance(h.formatter, JsonFormatter)
        for h in logging.getLogger().handlers
    )


def last_words(message: str) -> None:
    """Tell stderr why the command stops: ``error: message`` for a person, or one JSON
    log record when the logs are JSON lines, so a log pipeline reads every line."""
    if writes_json():
        logging.getLogger("flowledger.cli").error(message, extra=log_extra("exit"))
    else:
        sys.stderr.write(f"error: {message}\n")

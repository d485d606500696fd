"""Step logs: what a handler logs through ``ctx.logger``, kept with its attempt.

Each attempt buffers its lines in memory (:class:`StepLogBuffer`); the journal writes
them in the commit that records the attempt's result (or its suspension), so logging
costs no extra commit. A crash before that commit loses the attempt's lines together
with its result: the attempt runs again and logs again.

Bounds: a line keeps at most :data:`MAX_LINE` characters; an attempt keeps lines up to
its byte budget (``FLOWLEDGER_STEP_LOG_LIMIT``, default 64KiB of messages); from the
first line that does not fit, lines are counted, not kept (what is kept is the beginning
of the attempt's log), and one WARNING line says how many were dropped.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import Any

#: Characters kept of one line; the rest is replaced by a note of how much was cut.
MAX_LINE = 4096
#: Default byte budget of one attempt's lines (UTF-8 of the messages).
DEFAULT_LIMIT = 64 * 1024


class StepLogBuffer:
    """One attempt's lines not yet written, and its budget."""

    __slots__ = ("_dropped", "_dropped_at", "_limit", "_used", "lines")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        #: (at, level name, message), oldest first; drained by the journal.
        self.lines: list[tuple[datetime, str, str]] = []
        self._limit = limit
        self._used = 0
        self._dropped = 0
        self._dropped_at: datetime | None = None

    def add(self, at: datetime, level: str, message: str) -> None:
        if len(message) > MAX_LINE:
            cut = len(message) - MAX_LINE
            message = f"{message[:MAX_LINE]}… ({cut} more characters cut)"
        size = len(message.encode("utf-8", "replace"))
        # Once one line did not fit, none after it is kept: what is kept is the beginning.
        if self._dropped_at is not None or self._used + size > self._limit:
            self._dropped += 1
            self._dropped_at = at
            return
        self._used += size
        self.lines.append((at, level, message))

    @property
    def pending(self) -> bool:
        return bool(self.lines) or self._dropped > 0

    def drain(self) -> list[tuple[datetime, str, str]]:
        """The lines to write now, with a note of the ones dropped since the last drain."""
        lines = self.lines
        self.lines = []
        if self._dropped and self._dropped_at is not None:
            note = (
                f"{self._dropped} more log lines dropped: this attempt reached its limit "
                f"of {self._limit} bytes of log messages (FLOWLEDGER_STEP_LOG_LIMIT)"
            )
            lines.append((self._dropped_at, "WARNING", note))
            self._dropped = 0
        return lines


class StepLogger(logging.LoggerAdapter[logging.Logger]):
    """``ctx.logger``: logs as any logger does, and keeps lines at or above ``threshold``
    in the attempt's buffer (whatever level the process's own logging shows)."""

    def __init__(
        self,
        logger: logging.Logger,
        extra: MutableMapping[str, object],
        buffer: Callable[[], StepLogBuffer],
        threshold: int,
        now: Callable[[], datetime],
        redact: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(logger, extra)
        #: The execution's secrets out of what reaches the process's own logs too (the
        #: buffer's lines are redacted as they are stored).
        self._redact = redact
        #: The attempt's buffer, asked for at the first line kept (most steps log none:
        #: they never get one, and the journal has nothing to look at).
        self._buffer = buffer
        self._threshold = threshold
        self._now = now

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        line = None
        if level >= self._threshold:
            line = _render(msg, args, kwargs)
            self._buffer().add(self._now(), logging.getLevelName(level), line)
        if self._redact is None:
            super().log(level, msg, *args, **kwargs)
        elif self.isEnabledFor(level):
            line = line if line is not None else _render(msg, args, kwargs)
            kwargs.pop("exc_info", None)  # its traceback is in the line, redacted too
            super().log(level, "%s", self._redact(line), **kwargs)

    def raised(self, exc: BaseException, message: str, summary: str) -> None:
        """``message`` with ``exc``'s traceback kept in the attempt's buffer (``executions
        logs``), and only ``summary``, one line, in the process's log: tour 25's ``run``
        printed 40 lines of internal frames on its console for every failed attempt.
        Without a buffer that keeps warnings, the traceback goes to the process's log."""
        if self._threshold > logging.WARNING:
            self.warning("%s", message, exc_info=exc)
            return
        self._buffer().add(self._now(), "WARNING", _render(message, (), {"exc_info": exc}))
        if self.isEnabledFor(logging.WARNING):
            text = self._redact(summary) if self._redact is not None else summary
            super().log(logging.WARNING, "%s", text)


def _render(msg: object, args: tuple[object, ...], kwargs: dict[str, Any]) -> str:
    """The line as a handler's formatter would show its message (plus the exception)."""
    text = str(msg)
    if args:
        try:
            text = text % (args[0] if len(args) == 1 and isinstance(args[0], dict) else args)
        except (TypeError, ValueError, KeyError):
            text = f"{text} {args!r}"
    exc_info = kwargs.get("exc_info")
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        elif not isinstance(exc_info, tuple):
            exc_info = sys.exc_info()
        if exc_info[0] is not None:
            text += "\n" + "".join(traceback.format_exception(*exc_info)).rstrip()
    return text

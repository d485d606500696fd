"""A watchdog thread for the event loop of the commands that run steps (``worker``,
``serve``, ``run``).

An async step handler that calls blocking code (``time.sleep``, a blocking HTTP client)
holds the process's one event loop: asyncio cannot preempt it, so the step's timeout never
fires, leases are not renewed (another worker takes the executions over) and the loop's
SIGTERM handler never runs. The loop cannot report that itself, so a thread does: the
loop runs a heartbeat callback once a second, and when it has not for ``stall_after``
seconds the thread logs one warning naming the task and the code holding the loop, then
one line when the loop runs again.

A stop (SIGTERM, SIGINT) that the stalled loop has not acted on for ``stall_after``
seconds exits the process (:data:`EXIT_STUCK`): its leases lapse and other workers run
its steps again, as after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from flowledger.logs import log_extra

log = logging.getLogger(__name__)

#: The most often the loop runs the heartbeat: one timer callback a second at most.
BEAT_EVERY = 1.0
#: Exit code of a process stopped while its loop was blocked.
EXIT_STUCK = 1
#: If the last log line itself hangs (the blocked thread holds the log handler's lock),
#: exit anyway after this long.
LAST_WORDS_WAIT = 5.0
#: A step handler's task name, as the runner gives it (runtime.runner ``_launch``).
STEP_TASK = re.compile(r"step (?P<step>\S+) of execution (?P<execution>\S+)")
HINT = (
    "a step calling blocking code in an async handler? make it a plain def (plain "
    "handlers run in a worker thread) or await an async call instead; meanwhile no step "
    "timeout fires and no lease is renewed"
)


class LoopWatchdog:
    """Watches the running loop it is created on, from its own daemon thread."""

    def __init__(self, stall_after: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stall_after = stall_after
        self._every = min(BEAT_EVERY, stall_after / 4)
        self._beat = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._stop_at: float | None = None
        #: Whether a stop the blocked loop ignores ends the process (``handle_stops``).
        self._stops = False
        #: The log fields of the stall being reported: its resumption names them again.
        self._stalled: dict[str, Any] = log_extra("loop_stalled")
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def start(self) -> None:
        self._tick()
        self._thread.start()

    def close(self) -> None:
        self._beat = time.monotonic()  # the loop runs (this is it): a stall being reported ended
        self._closed.set()
        if self._timer is not None:
            self._timer.cancel()
        self._thread.join(timeout=LAST_WORDS_WAIT)  # it says so before the process ends

    def handle_stops(self, stop: Callable[[], None]) -> None:
        """Run ``stop`` on the loop at SIGTERM or SIGINT, and note the stop for the thread
        in case the loop never gets to it."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, stop)
            # The loop hears of the signal through its wakeup fd, whatever Python handler
            # is set; this one replaces its no-op and runs in the main thread even while
            # the loop is blocked (a blocking call is interrupted for it, then resumed).
            signal.signal(sig, self._stop_requested)
        self._stops = True

    def _stop_requested(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_at is None:
            self._stop_at = time.monotonic()

    def _tick(self) -> None:
        self._beat = time.monotonic()
        self._timer = self._loop.call_later(self._every, self._tick)

    def _watch(self) -> None:
        stalled_from: float | None = None  # the last beat before the stall being reported
        while not self._closed.wait(self._every):
            beat = self._beat
            now = time.monotonic()
            if now - beat >= self._stall_after:
                if stalled_from != beat:
                    stalled_from = beat
                    self._warn(now - beat)
                self._exit_if_stuck(now, beat)
            elif stalled_from is not None:
                self._recovered(beat - stalled_from)
                stalled_from = None
        if stalled_from is not None:  # the loop ran again only to close
            self._recovered(self._beat - stalled_from)

    def _warn(self, seconds: float) -> None:
        task = asyncio.current_task(self._loop)  # a dict lookup: fine from this thread
        name = task.get_name() if task is not None else None
        step = STEP_TASK.fullmatch(name) if name else None
        self._stalled = log_extra(
            "loop_stalled", step["execution"] if step else None, step["step"] if step else None
        )
        log.warning(
            "the event loop has not run for %.0f s: blocked in %s at %s; %s%s",
            seconds,
            f"task {name!r}" if name else "a callback outside any task",
            self._blocking_code(),
            HINT,
            "; SIGTERM still stops the process (without draining) if the loop stays blocked"
            if self._stops
            else "",
            extra=self._stalled,
        )

    def _blocking_code(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "an unknown place"
        # Innermost first: the blocking call, then its callers.
        top = reversed(traceback.extract_stack(frame, limit=3))
        return " < ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in top)

    def _recovered(self, beats_apart: float) -> None:
        # The stall began up to one beat interval after the last beat before it.
        stall = max(beats_apart - self._every / 2, self._stall_after)
        log.warning(
            "the event loop runs again, after a stall of about %.0f s",
            stall,
            extra={**self._stalled, "action": "loop_resumed"},
        )

    def _exit_if_stuck(self, now: float, beat: float) -> None:
        asked = self._stop_at
        if asked is None or now - max(asked, beat) < self._stall_after:
            return
        threading.Timer(LAST_WORDS_WAIT, os._exit, (EXIT_STUCK,)).start()
        log.error(
            "stopping although the event loop is still blocked (it has not run for %.0f s, "
            "%.0f s since the stop was asked for): exiting with code %d without draining; "
            "the leases of its executions lapse and other workers run their unfinished "
            "steps again",
            now - beat,
            now - asked,
            EXIT_STUCK,
            extra={**self._stalled, "action": "loop_stuck_exit"},
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_STUCK)


@contextmanager
def watch_loop(stall_after: float) -> Iterator[LoopWatchdog]:
    """Watch the running loop while the block runs (call it on the loop's thread)."""
    watchdog = LoopWatchdog(stall_after)
    watchdog.start()
    try:
        yield watchdog
    finally:
        watchdog.close()

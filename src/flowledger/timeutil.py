"""Time as flowledger stores and shows it: aware UTC, ISO-8601 with milliseconds and ``Z``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

#: Delta-seconds; more than nine digits is read as the longest wait (callers cap it).
_DELTA_SECONDS = re.compile(r"[0-9]+")
_LONGEST_RETRY_AFTER = 10**9 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (SPEC §4's timestamps). The C
    ``isoformat``, not ``strftime`` (half the cost; a document has a dozen): both cut the
    microseconds, neither rounds (tests/test_timeutil.py pins the two equal)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


class Clock:
    """A worker's idea of the database's time: the local clock plus a measured offset.

    Leases and timers are decided on the database's clock, so a worker whose own
    clock is off by an hour still fires every timer on time (the offset is
    re-measured at every lease heartbeat).
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        """The time of executions: what timers (delays, due dates, retry back-offs) are
        compared with and what is recorded (a test's clock may run ahead of it:
        flowledger.testing.VirtualClock)."""
        offset = self.offset
        # Most clocks are the database's own (SQLite, a synchronized host): no addition.
        return datetime.now(UTC) + offset if offset else datetime.now(UTC)

    def lease_now(self) -> datetime:
        """The time leases are judged by: the database's, never skipped ahead (a lease
        bounds how long a process may go silent, which a test's clock does not change)."""
        offset = self.offset
        return datetime.now(UTC) + offset if offset else datetime.now(UTC)

    def synchronize(self, database_now: datetime) -> None:
        self.offset = database_now - datetime.now(UTC)

    def bind(self, runners: Callable[[], Sequence[Any]]) -> None:
        """Told how to list the runs of the engine it serves (a test's clock wakes them
        when it moves); this one never moves, so it needs not."""


def retry_after(headers: Mapping[str, str]) -> timedelta | None:
    """The wait an HTTP answer's ``Retry-After`` header asks for (RFC 9110 §10.2.3):
    delta-seconds, or an HTTP-date, read against the answer's own ``Date`` when it has
    one (so a server whose clock is off still means the wait it says); None when absent
    or unreadable. ``headers`` with lower-case names, or httpx's (any case). What a
    caller waits is capped by the caller (``sys.http_request``'s retry policy, the
    webhook deliveries' schedule)."""
    value = headers.get("retry-after", "").strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = int(value) if len(value) <= 9 else _LONGEST_RETRY_AFTER
        return timedelta(seconds=seconds)
    when = _http_date(value)
    if when is None:
        return None
    now = _http_date(headers.get("date", "")) or datetime.now(UTC)
    return max(when - now, timedelta(0))


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # "-0000": UTC

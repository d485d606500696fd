"""Time as flowledger stores and shows it: aware UTC, ISO-8601 with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


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
        offset = self.offset
        # Most clocks are the database's own (SQLite, a synchronized host): no addition.
        return datetime.now(UTC) + offset if offset else datetime.now(UTC)

    def synchronize(self, database_now: datetime) -> None:
        self.offset = database_now - datetime.now(UTC)

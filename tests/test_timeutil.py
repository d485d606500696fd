"""Time helpers: ISO formatting and the database-clock offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowledger.timeutil import Clock, iso


def test_iso_has_milliseconds_and_z() -> None:
    moment = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    assert iso(moment) == "2026-11-22T10:00:00.123Z"


def test_a_clock_follows_the_database_not_the_machine() -> None:
    clock = Clock()
    # The database is an hour behind this machine's clock (or this machine is an hour ahead).
    clock.synchronize(datetime.now(UTC) - timedelta(hours=1))
    assert abs(clock.now() - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(seconds=5)

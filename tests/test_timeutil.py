"""Time helpers: ISO formatting and the database-clock offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.timeutil import Clock, iso


def test_iso_has_milliseconds_and_z() -> None:
    moment = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    assert iso(moment) == "2026-11-22T10:00:00.123Z"


def test_a_clock_follows_the_database_not_the_machine() -> None:
    clock = Clock()
    # The database is an hour behind this machine's clock (or this machine is an hour ahead).
    clock.synchronize(datetime.now(UTC) - timedelta(hours=1))
    assert abs(clock.now() - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(seconds=5)


#: Zones a timestamp may come in with (PostgreSQL's driver, a caller's own).
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(datetime(1001, 1, 1), datetime(9998, 12, 31), timezones=st.sampled_from(ZONES)),
)
def test_iso_is_the_strftime_form_it_replaced(moment: datetime) -> None:
    """``isoformat`` cut to milliseconds: what ``strftime`` gave, for any zone."""
    utc = moment.astimezone(UTC)
    assert iso(moment) == utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

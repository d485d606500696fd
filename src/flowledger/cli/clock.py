"""Times for people: stored times are UTC ISO text; every command shows them in this
machine's time zone (``executions show`` names it in its header), so one step's time
reads the same in ``run``, ``events``, ``logs`` and ``show``."""

from __future__ import annotations

from datetime import UTC, datetime


def parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_of_day(text: str) -> str:
    """``10:02:03.120``: the local time of day, to the millisecond."""
    return parse(text).astimezone().strftime("%H:%M:%S.%f")[:-3]


def stamp(text: str) -> str:
    """``2026-12-01 10:02:03.120``: the local date and time, to the millisecond."""
    return parse(text).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

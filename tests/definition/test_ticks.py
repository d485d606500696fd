"""Schedule ticks: cron arithmetic in a time zone (DST included) and catch-up policies."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger import Engine, StepRegistry
from flowledger.definition.strictness import stored_definitions
from flowledger.definition.ticks import GRACE, due_ticks, next_fire_times, next_tick, plan_ticks
from flowledger.definition.triggers import ScheduleTrigger

CatchUp = Literal["none", "all", "latest"]
SECOND = timedelta(seconds=1)


def schedule(cron: str, timezone: str = "UTC", catch_up: CatchUp = "none") -> ScheduleTrigger:
    return ScheduleTrigger(type="schedule", cron=cron, timezone=timezone, catch_up=catch_up)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def walk(spec: ScheduleTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every tick in (start, end], found forwards with next_tick."""
    found = []
    moment = next_tick(spec, start)
    while moment is not None and moment <= end:
        found.append(moment)
        moment = next_tick(spec, moment)
    return found


def hhmm(moments: Sequence[datetime]) -> list[str]:
    return [m.strftime("%m-%d %H:%M") for m in moments]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Spring forward (Europe/Berlin, 29 March 2026): 02:30 does not exist that day; the
        # tick fires once, when the clocks jump (03:00 CEST = 01:00 UTC).
        ("2026-03-27", "2026-03-31", ["03-27 01:30", "03-28 01:30", "03-29 01:00", "03-30 00:30"]),
        # Fall back (25 October 2026): 02:30 happens twice; the tick fires at the first.
        ("2026-10-23", "2026-10-27", ["10-23 00:30", "10-24 00:30", "10-25 00:30", "10-26 01:30"]),
    ],
)
def test_a_daily_tick_fires_once_on_both_dst_change_days(
    start: str, end: str, expected: list[str]
) -> None:
    spec = schedule("30 2 * * *", "Europe/Berlin")
    forwards = walk(spec, utc(start), utc(end))
    backwards = due_ticks(spec, utc(start), utc(end), 100)
    assert hhmm(forwards) == expected
    assert backwards == list(reversed(forwards))


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-10-24T23:00", "2026-10-25T03:00"), ("2026-03-28T23:00", "2026-03-29T03:00")],
)
def test_an_every_hour_schedule_keeps_real_time_pace_through_dst(start: str, end: str) -> None:
    spec = schedule("*/30 * * * *", "Europe/Berlin")
    ticks = walk(spec, utc(start), utc(end))
    assert {b - a for a, b in itertools.pairwise(ticks)} == {timedelta(minutes=30)}
    assert len(ticks) == 8
    assert due_ticks(spec, utc(start), utc(end), 100) == list(reversed(ticks))


def polled(
    spec: ScheduleTrigger, start: datetime, end: datetime, step: timedelta
) -> list[datetime]:
    """The ticks a worker looking every ``step`` from ``start`` to ``end`` sees, oldest
    first: each look asks for the ticks since the one before, as the scheduler does."""
    found: list[datetime] = []
    since = start
    while since < end:
        now = min(since + step, end)
        found.extend(reversed(due_ticks(spec, since, now, 100)))
        since = now
    return found


@pytest.mark.parametrize(
    ("cron", "timezone", "start", "end", "count"),
    [
        # Fall back, 4 April 2027 at 16:00 UTC: 02:00-03:00 happens twice.
        ("0 * * * *", "Australia/Sydney", "2027-04-03T14:30", "2027-04-03T17:30", 3),
        ("*/15 * * * *", "Europe/Berlin", "2027-10-30T23:30", "2027-10-31T02:30", 12),
        ("*/15 * * * *", "America/New_York", "2027-11-07T04:30", "2027-11-07T07:30", 12),
        # Spring forward: the hour that is skipped on the clock still passes in real time.
        ("*/15 * * * *", "Europe/Berlin", "2027-03-27T23:30", "2027-03-28T02:30", 12),
        ("0 * * * *", "America/New_York", "2027-03-14T05:30", "2027-03-14T08:30", 3),
        # Lord Howe Island moves its clocks by half an hour.
        ("*/30 * * * *", "Australia/Lord_Howe", "2027-04-03T13:50", "2027-04-03T16:10", 5),
    ],
)
def test_an_every_hour_schedule_polled_every_ten_seconds_fires_each_tick_through_dst(
    cron: str, timezone: str, start: str, end: str, count: int
) -> None:
    spec = schedule(cron, timezone)
    ticks = polled(spec, utc(start), utc(end), 10 * SECOND)
    assert len(ticks) == count
    assert len({b - a for a, b in itertools.pairwise(ticks)}) == 1  # one pace, no gap
    assert ticks == walk(spec, utc(start), utc(end))


def test_the_second_pass_of_a_repeated_hour_is_due_on_its_own() -> None:
    spec = schedule("0 * * * *", "Australia/Sydney")
    [first, second, third] = polled(
        spec, utc("2027-04-03T14:30"), utc("2027-04-03T17:30"), 10 * SECOND
    )
    assert (first, second, third) == (
        utc("2027-04-03T15:00"),  # 02:00 AEDT
        utc("2027-04-03T16:00"),  # 02:00 AEST, the second pass
        utc("2027-04-03T17:00"),
    )
    inside = utc("2027-04-03T16:00:01")
    assert due_ticks(spec, inside - 2 * SECOND, inside, 2) == [second]
    assert next_tick(spec, utc("2027-04-03T15:30")) == second


@pytest.mark.parametrize(
    ("cron", "start", "end", "expected"),
    [
        ("30 2 * * *", "2026-10-24T23:00", "2026-10-25T03:00", ["10-25 00:30"]),
        ("0,30 2 * * *", "2026-10-24T23:00", "2026-10-25T03:00", ["10-25 00:00", "10-25 00:30"]),
        ("30 2 * * *", "2026-03-28T23:00", "2026-03-29T03:00", ["03-29 01:00"]),
        ("0,30 2 * * *", "2026-03-28T23:00", "2026-03-29T03:00", ["03-29 01:00"]),
    ],
)
def test_fixed_hours_polled_through_dst_fire_once(
    cron: str, start: str, end: str, expected: list[str]
) -> None:
    spec = schedule(cron, "Europe/Berlin")
    assert hhmm(polled(spec, utc(start), utc(end), 10 * SECOND)) == expected
    assert hhmm(walk(spec, utc(start), utc(end))) == expected


#: DST changes around which the property below looks (UTC), in the zone of each.
CHANGES = [
    ("Europe/Berlin", "2027-10-31T01:00"),
    ("Europe/Berlin", "2027-03-28T01:00"),
    ("Australia/Sydney", "2027-04-03T16:00"),
    ("America/New_York", "2027-11-07T06:00"),
    ("Australia/Lord_Howe", "2027-04-03T15:00"),
    ("Asia/Kolkata", "2027-04-03T15:00"),  # no DST
]
CRONS = ["0 * * * *", "*/15 * * * *", "45 * * * *", "@hourly", "30 2 * * *", "0,30 1-3 * * *"]


@settings(max_examples=100, deadline=None)
@given(
    change=st.sampled_from(CHANGES),
    cron=st.sampled_from(CRONS),
    start=st.integers(-4 * 3600, 3600),
    cuts=st.lists(st.integers(1, 5 * 3600), max_size=12),
)
def test_ticks_of_consecutive_windows_are_the_ticks_of_the_whole_window(
    change: tuple[str, str], cron: str, start: int, cuts: list[int]
) -> None:
    zone, at = change
    spec = schedule(cron, zone)
    since = utc(at) + start * SECOND
    moments = [since, *sorted({since + cut * SECOND for cut in cuts})]
    whole = due_ticks(spec, moments[0], moments[-1], 1000)
    assert whole == sorted(set(whole), reverse=True)
    pieces = [due_ticks(spec, a, b, 1000) for a, b in itertools.pairwise(moments)]
    assert [tick for piece in reversed(pieces) for tick in piece] == whole
    for moment in moments[:-1]:  # the next fire time is the next tick due
        later = [tick for tick in whole if tick > moment]
        if later:
            assert next_tick(spec, moment) == later[-1]


def test_fixed_hours_in_a_repeated_hour_fire_at_the_first_pass() -> None:
    spec = schedule("0,30 2 * * *", "Europe/Berlin")
    # 01:10 UTC is 02:10 CET, in the second pass through 02:00-03:00 on 25 October.
    now = utc("2026-10-25T01:10")
    assert hhmm(due_ticks(spec, utc("2026-10-24T12:00"), now, 10)) == ["10-25 00:30", "10-25 00:00"]
    assert next_tick(spec, now) == utc("2026-10-26T01:00")


def test_tick_bounds_and_seconds_field() -> None:
    spec = schedule("*/5 * * * *")
    tick = utc("2026-01-01T10:05")
    assert due_ticks(spec, tick - SECOND, tick, 5) == [tick]  # a tick exactly now is due
    assert due_ticks(spec, tick, tick + SECOND, 5) == []  # and never again after it
    assert next_tick(spec, tick) == utc("2026-01-01T10:10")  # strictly after
    every_second = schedule("* * * * * *")  # croniter's sixth field is seconds
    assert next_tick(every_second, tick) == tick + SECOND
    assert len(due_ticks(every_second, tick, tick + 10 * SECOND, 100)) == 10


def test_a_cron_that_matches_no_date_never_fires() -> None:
    """Refused in a definition (below); a schedule stored before that rule never fires."""
    spec = ScheduleTrigger.model_construct(type="schedule", cron="0 0 30 2 *", timezone="UTC")
    assert next_tick(spec, utc("2026-01-01")) is None
    assert due_ticks(spec, utc("2020-01-01"), utc("2026-01-01"), 10) == []


def test_catch_up_policies() -> None:
    since, spec = utc("2026-01-01T10:00"), "*/5 * * * *"
    now = utc("2026-01-01T10:20:30")  # 10:05 .. 10:20 are due; 10:20 is current
    none = plan_ticks(schedule(spec), since, now)
    assert hhmm(none.fire) == ["01-01 10:20"] and none.last_tick == utc("2026-01-01T10:20")
    late = now + GRACE + SECOND  # nothing is current any more: all are skipped
    stale = plan_ticks(schedule(spec), since, late)
    assert stale.fire == () and stale.last_tick == utc("2026-01-01T10:20") and stale.dropped
    latest = plan_ticks(schedule(spec, catch_up="latest"), since, late)
    assert hhmm(latest.fire) == ["01-01 10:20"]
    every = plan_ticks(schedule(spec, catch_up="all"), since, late)
    assert hhmm(every.fire) == ["01-01 10:05", "01-01 10:10", "01-01 10:15", "01-01 10:20"]
    assert not every.dropped and not every.more
    capped = plan_ticks(schedule(spec, catch_up="all"), since, late, cap=3)
    assert hhmm(capped.fire) == ["01-01 10:10", "01-01 10:15", "01-01 10:20"] and capped.dropped
    batch = plan_ticks(schedule(spec, catch_up="all"), since, late, batch=2)
    assert hhmm(batch.fire) == ["01-01 10:05", "01-01 10:10"] and batch.more
    assert batch.last_tick == utc("2026-01-01T10:10")
    assert plan_ticks(schedule(spec), now, now).last_tick is None  # nothing new


NFT = """
name: nft
triggers:
  - {type: function}
  - {type: schedule, cron: "0 9 * * MON-FRI"}
steps: [{id: only, type: sys.no_action}]
"""


def test_next_fire_times_of_a_compiled_workflow() -> None:
    workflow = Engine("sqlite://", registry=StepRegistry.with_builtins()).load_text(NFT)
    [(trigger, when)] = next_fire_times(workflow, utc("2026-11-21T12:00"))  # a Saturday
    assert trigger.index == 1 and when == utc("2026-11-23T09:00")


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 0 30 2 *", "'0 0 30 2 *' never fires: no date matches it"),
        ("0 9 * * 1 5 2030", "is not a valid cron expression"),  # croniter's year field
        ("61 * * * *", "is not a valid cron expression"),
        # Seconds-first readers mean every ten seconds; it fires 60 times every 10 minutes.
        (
            "*/10 * * * * *",
            "fires every second of each minute it matches: the sixth field is seconds, "
            "last. Write '*/10 * * * * 0' for once in each of those minutes, "
            "'* * * * * */10' for every ten seconds",
        ),
    ],
)
def test_a_schedule_that_cannot_fire_as_meant_is_refused(cron: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        schedule(cron)


@pytest.mark.parametrize(
    "cron", ["0 0 29 2 *", "@daily", "* * * * * */10", "* * * * * *", "*/10 * * * * */1"]
)
def test_leap_days_aliases_and_seconds_are_schedules(cron: str) -> None:
    assert next_tick(schedule(cron), utc("2026-03-01")) is not None


def test_the_sixth_field_is_seconds() -> None:
    every_ten = schedule("* * * * * */10")
    assert next_tick(every_ten, utc("2026-03-01T00:00:01")) == utc("2026-03-01T00:00:10")


@pytest.mark.parametrize("cron", ["*/10 * * * * *", "0 0 30 2 *", "0 9 * * 1 5 2030"])
def test_rules_newer_than_a_stored_schedule_do_not_stop_it(cron: str) -> None:
    """A version stored before a rule was added compiles again in every process: the
    rule refuses new definitions only."""
    with stored_definitions():
        assert schedule(cron).cron == cron
    with pytest.raises(ValueError, match=r"fires every second|never fires|not a valid cron"):
        schedule(cron)

"""Schedule ticks: pure functions of a schedule trigger and a moment.

Ticks follow the cron expression in the trigger's time zone, through daylight saving
time changes the way cron does it:

- a schedule with fixed hours (``30 2 * * *``) fires each wall-clock time once: a time
  that happens twice (clocks go back) at its first occurrence; a time that never happens
  (clocks go forward) at the moment the clocks jump (03:00 that day in Europe/Berlin);
- a schedule that runs every hour (hour field ``*``, e.g. ``*/15 * * * *``) keeps its pace
  in real time: it fires in both passes of a repeated hour and not in a skipped one.

Missed ticks follow the trigger's ``catch_up`` (see :func:`plan_ticks`):

- ``none``: skipped; a tick fires only while it is current, up to ``GRACE`` after it;
- ``latest``: the most recent missed tick fires, the others are skipped;
- ``all``: each missed tick fires, oldest first, at most ``MAX_CATCH_UP`` of them (the
  newest ones).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.triggers import CompiledTrigger, ScheduleTrigger
from flowledger.timeutil import iso

#: How late a tick may still fire under ``catch_up: none``. Workers look every second, so
#: only a worker restart or a stalled database makes one later; past this, it was missed.
GRACE = timedelta(seconds=60)
#: At most this many missed ticks fire under ``catch_up: all`` (the newest ones).
MAX_CATCH_UP = 1000
#: At most this many ticks start per trigger in one round, so a round stays short.
BATCH = 100
#: Bound on cron steps per search: skipped or repeated hours can hold ticks to step over.
_MAX_STEPS = 100_000
_USEC = timedelta(microseconds=1)


#: How far apart offsets are looked up when checking that a stretch of time has one UTC
#: offset: since 1970 no zone in tzdata kept an offset for less than six days.
_PROBE = timedelta(days=1)


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _offset_change(zone: ZoneInfo, start: datetime, stop: datetime) -> datetime | None:
    """The first instant from ``start`` towards ``stop`` (either way, ``stop`` included)
    whose UTC offset is not ``start``'s, to the microsecond; None if there is none."""
    offset = _offset(zone, start)
    later = stop >= start
    near = start
    while near != stop:
        far = min(near + _PROBE, stop) if later else max(near - _PROBE, stop)
        if _offset(zone, far) != offset:
            while abs(far - near) > _USEC:
                middle = near + (far - near) / 2
                if _offset(zone, middle) == offset:
                    near = middle
                else:
                    far = middle
            return far
        near = far
    return None


def _moment(wall: datetime, zone: ZoneInfo) -> datetime:
    """When the naive wall-clock time ``wall`` happens in ``zone`` (aware UTC): the first
    occurrence of a repeated time; the end of the jump for a skipped one."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: fold=1 lands before the jump, fold=0 after it.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    jump = _offset_change(zone, before, first)
    assert jump is not None  # the two sides of a jump have different offsets
    return jump


def _wall(moment: datetime, zone: ZoneInfo) -> tuple[datetime, timedelta]:
    """The naive wall-clock time of ``moment`` in ``zone``, and how far past it wall times
    may already have happened (the rest of a repeated hour, on its second pass)."""
    local = moment.astimezone(zone)
    ahead = timedelta(0)
    if local.fold:
        first, second = local.replace(fold=0).utcoffset(), local.utcoffset()
        if first is not None and second is not None:
            ahead = first - second
    return local.replace(tzinfo=None), ahead


def _every_hour(cron: str) -> bool:
    """Whether the hour field is ``*``: such schedules keep real-time pace (cron's rule)."""
    fields = cron.split()
    if len(fields) == 1:  # a macro such as @daily
        return fields[0].lower() == "@hourly"
    return fields[1] == "*"


def _local(moment: datetime, offset: timedelta) -> datetime:
    """The naive wall-clock time of ``moment`` (aware UTC) at a UTC ``offset``."""
    return (moment + offset).replace(tzinfo=None)


def _instant(wall: datetime, offset: timedelta) -> datetime:
    return wall.replace(tzinfo=UTC) - offset


# An every-hour schedule fires at each instant whose wall-clock time matches the cron, in
# either pass of a repeated hour. Time is cut where the zone's UTC offset changes: within
# one offset, wall-clock time is UTC shifted, so cron's steps map straight to instants.
# (Stepping croniter through aware times instead lost the second pass: from it, get_prev
# lands on the first pass, older than the newest tick.)


def _real_time_backward(
    cron: str, zone: ZoneInfo, now: datetime, floor: datetime
) -> Iterator[datetime]:
    """The ticks in (``floor``, ``now``] of an every-hour schedule, newest first."""
    from croniter import croniter

    top = now  # the newest instant left to look at, included
    while top > floor:
        offset = _offset(zone, top)
        steps = croniter(cron, _local(top, offset) + _USEC)
        checked = top  # the offset holds from here to top
        while True:
            tick = _instant(steps.get_prev(datetime), offset)
            change = _offset_change(zone, checked, max(tick, floor))
            if change is not None:  # the tick is not at that offset: go on at the next one
                top = change
                break
            if tick <= floor:
                return
            checked = tick
            yield tick


def _real_time_forward(cron: str, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """The ticks after ``after`` of an every-hour schedule, oldest first."""
    from croniter import croniter

    bottom = after + _USEC  # the oldest instant left to look at, included
    while True:
        offset = _offset(zone, bottom)
        steps = croniter(cron, _local(bottom, offset) - _USEC)
        checked = bottom
        while True:
            tick = _instant(steps.get_next(datetime), offset)
            change = _offset_change(zone, checked, tick)
            if change is not None:
                bottom = change
                break
            checked = tick
            yield tick


def _backward(spec: ScheduleTrigger, now: datetime, floor: datetime) -> Iterator[datetime]:
    """Ticks at or before ``now``, newest first (a fixed-hour schedule's may repeat, come
    after ``now`` or reach ``floor``)."""
    from croniter import croniter  # imported when a schedule is first evaluated

    zone = ZoneInfo(spec.timezone)
    if _every_hour(spec.cron):
        yield from _real_time_backward(spec.cron, zone, now, floor)
        return
    wall, ahead = _wall(now, zone)
    steps = croniter(spec.cron, wall + ahead + _USEC)
    while True:
        yield _moment(steps.get_prev(datetime), zone)


def _forward(spec: ScheduleTrigger, after: datetime) -> Iterator[datetime]:
    """Ticks after ``after``, oldest first (a fixed-hour schedule's first ones may be at or
    before it)."""
    from croniter import croniter

    zone = ZoneInfo(spec.timezone)
    if _every_hour(spec.cron):
        yield from _real_time_forward(spec.cron, zone, after)
        return
    steps = croniter(spec.cron, _wall(after, zone)[0])
    while True:
        yield _moment(steps.get_next(datetime), zone)


def due_ticks(spec: ScheduleTrigger, since: datetime, now: datetime, limit: int) -> list[datetime]:
    """The ticks in (``since``, ``now``], newest first, at most ``limit`` of them."""
    from croniter import CroniterError

    found: list[datetime] = []
    try:
        for _, tick in zip(range(_MAX_STEPS), _backward(spec, now, since), strict=False):
            if len(found) >= limit or tick <= since:
                break
            if tick <= now and (not found or tick < found[-1]):
                found.append(tick)
    except CroniterError:  # an expression that matches no date at all, like 30 February
        pass
    return found


def next_tick(spec: ScheduleTrigger, after: datetime) -> datetime | None:
    """The first tick strictly after ``after`` (aware UTC); None if the cron never fires."""
    from croniter import CroniterError

    try:
        for _, tick in zip(range(_MAX_STEPS), _forward(spec, after), strict=False):
            if tick > after:
                return tick
    except CroniterError:
        pass
    return None


@dataclass(frozen=True)
class TickPlan:
    """What one round does for one schedule trigger."""

    #: Ticks to start now, oldest first (aware UTC).
    fire: tuple[datetime, ...]
    #: The progress to record: the newest tick dealt with (None: nothing new is due).
    last_tick: datetime | None
    #: Due ticks that the catch-up policy leaves unstarted.
    dropped: int
    #: More due ticks wait for the next round (``all`` fires at most ``batch`` per round).
    more: bool


def plan_ticks(
    spec: ScheduleTrigger,
    since: datetime,
    now: datetime,
    *,
    grace: timedelta = GRACE,
    cap: int = MAX_CATCH_UP,
    batch: int = BATCH,
) -> TickPlan:
    """Apply the trigger's ``catch_up`` policy to the ticks due in (``since``, ``now``].

    ``dropped`` counts the ticks seen to be skipped; under ``none`` and ``latest`` older
    missed ticks are not even enumerated, so it is a lower bound there.
    """
    if spec.catch_up != "all":
        newest = due_ticks(spec, since, now, 2)
        if not newest:
            return TickPlan((), None, 0, False)
        fire = spec.catch_up == "latest" or now - newest[0] <= grace
        chosen: tuple[datetime, ...] = (newest[0],) if fire else ()
        return TickPlan(chosen, newest[0], len(newest) - len(chosen), False)
    due = due_ticks(spec, since, now, cap + 1)
    dropped = max(0, len(due) - cap)
    oldest_first = tuple(reversed(due[:cap]))
    if len(oldest_first) > batch:
        first = oldest_first[:batch]
        return TickPlan(first, first[-1], dropped, True)
    return TickPlan(oldest_first, due[0] if due else None, dropped, False)


def next_fire_times(
    workflow: CompiledWorkflow, after: datetime
) -> list[tuple[CompiledTrigger, datetime | None]]:
    """Each schedule trigger of ``workflow`` with its first tick after ``after``."""
    return [
        (trigger, next_tick(trigger.spec, after))
        for trigger in workflow.triggers
        if isinstance(trigger.spec, ScheduleTrigger)
    ]


def trigger_key(workflow_name: str, schedule_id: str, tick: datetime) -> str:
    """The key of one schedule's tick: started once, by the scheduler or a backfill."""
    return f"{trigger_key_prefix(workflow_name, schedule_id)}{iso(tick)}"


def trigger_key_prefix(workflow_name: str, schedule_id: str) -> str:
    """What the trigger keys of one schedule's ticks start with (``schedule_id``: the
    trigger's :attr:`CompiledTrigger.schedule_id`, which no push moves to another)."""
    return f"schedule:{workflow_name}:{schedule_id}:"

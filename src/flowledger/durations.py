"""Durations as definitions write them: ``500ms``, ``30s``, ``5m``, ``2h``, ``2d`` or ISO-8601."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from flowledger.errors import shown

# The unit may be left out: a bare number is seconds, as text too (a flag, a variable).
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_ISO = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: Longer than any sane timer; also keeps datetime arithmetic far from overflow.
MAX_DURATION = timedelta(days=3650)

HELP = (
    "write it like '500ms', '30s', '5m', '2h', '2d', ISO-8601 'PT30S', "
    "or a bare number of seconds (90)"
)


def parse_duration(value: str | int | float) -> timedelta:
    """Parse a duration; plain numbers are seconds. Raises ValueError with a usable message."""
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a duration; {HELP}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise ValueError(f"{shown(value)} is not a duration; {HELP}")
    if seconds != seconds or seconds < 0:  # NaN or negative
        raise ValueError(f"duration {shown(value)} must not be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {shown(value)} is longer than the maximum of 3650 days")
    return timedelta(seconds=seconds)


def spoken(duration: timedelta) -> str:
    """A duration as people read it, rounded to its two largest units: ``800ms``,
    ``45s``, ``1m02s``, ``2h05m``, ``3d4h`` (never ``0:01:02.171384``)."""
    millis = max(0, round(duration.total_seconds() * 1000))
    if millis < 1000:
        return f"{millis}ms"
    seconds = round(millis / 1000)
    if seconds < 3600:
        minutes, seconds = divmod(seconds, 60)
        return _two(minutes, "m", seconds, "s") if minutes else f"{seconds}s"
    minutes = round(seconds / 60)
    if minutes < 24 * 60:
        hours, minutes = divmod(minutes, 60)
        return _two(hours, "h", minutes, "m")
    days, hours = divmod(round(minutes / 60), 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small:02d}{small_unit}" if small else f"{big}{big_unit}"


def _parse_text(text: str) -> float:
    short = _SHORT.match(text)
    if short:
        return float(short.group(1)) * _UNIT_SECONDS[short.group(2) or "s"]
    iso = _ISO.match(text.strip().upper())
    if iso and text.strip().upper() not in ("P", "PT") and any(iso.groupdict().values()):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return (
            parts.get("days", 0.0) * 86400
            + parts.get("hours", 0.0) * 3600
            + parts.get("minutes", 0.0) * 60
            + parts.get("seconds", 0.0)
        )
    raise ValueError(f"{shown(text)} is not a duration; {HELP}")


def duration_at_least(value: Any, minimum: timedelta) -> Any:
    """A duration field's given value (text such as ``30d``, seconds, a timedelta) as a
    timedelta, ValueError in words when it is shorter than ``minimum``; any other value
    is left for the field's own type to refuse. For a field validator (mode "before")."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, timedelta) and value < minimum:
        raise ValueError(f"must be at least {spoken(minimum)}, not {spoken(value)}")
    return value


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


#: A duration field of a pydantic model: parsed from the forms above, written as seconds.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float),
]

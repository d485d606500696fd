from datetime import timedelta

import pytest

from flowledger.durations import parse_duration, spoken


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("2d", timedelta(days=2)),
        ("1.5s", timedelta(seconds=1.5)),
        ("PT30S", timedelta(seconds=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("pt1m", timedelta(minutes=1)),
        (3, timedelta(seconds=3)),
        (0.25, timedelta(milliseconds=250)),
        # As text too, as a flag or a variable gives it (--lease 90, FLOWLEDGER_LEASE=90).
        ("90", timedelta(seconds=90)),
        (" 1.5 ", timedelta(seconds=1.5)),
    ],
)
def test_parses_every_documented_form(text: str | float, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "bad", ["ten", "", "P", "PT", "5 minutes", "-1s", "-1", "1.", True, "1e309s", 1e309]
)
def test_refuses_what_is_not_a_duration(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|maximum"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_refuses_absurdly_long_durations() -> None:
    with pytest.raises(ValueError, match="maximum"):
        parse_duration("100000d")


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(0), "0ms"),
        (timedelta(milliseconds=800.4), "800ms"),
        (timedelta(seconds=45.2), "45s"),
        (timedelta(seconds=59.6), "1m"),
        (timedelta(minutes=1, seconds=2.171384), "1m02s"),
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=2, minutes=5, seconds=20), "2h05m"),
        (timedelta(hours=23, minutes=59, seconds=50), "1d"),
        (timedelta(days=3, hours=4, minutes=10), "3d4h"),
        (timedelta(seconds=-1), "0ms"),
    ],
)
def test_spoken_durations_are_rounded_to_two_units(duration: timedelta, expected: str) -> None:
    assert spoken(duration) == expected

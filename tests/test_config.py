"""Settings from FLOWLEDGER_* variables: defaults, parsing, and clear refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowledger.config import ConfigError, Settings


def test_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings().db_url == "sqlite:///flowledger.db"


def test_values_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "FLOWLEDGER_DB": "postgresql://x/y",
            "FLOWLEDGER_LEASE": "2m",
            "FLOWLEDGER_SQLITE_SYNCHRONOUS": "full",
        }
    )
    assert settings == Settings("postgresql://x/y", timedelta(minutes=2), "FULL")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"FLOWLEDGER_LEASE": "soon"}, "FLOWLEDGER_LEASE: 'soon' is not a duration"),
        ({"FLOWLEDGER_LEASE": "100ms"}, "at least 1s"),
        ({"FLOWLEDGER_SQLITE_SYNCHRONOUS": "OFF"}, "must be one of NORMAL, FULL, EXTRA"),
    ],
)
def test_bad_values_are_refused_clearly(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)

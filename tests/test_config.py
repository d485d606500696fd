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
        ({"FLOWLEDGER_LEASE": "soon"}, 'FLOWLEDGER_LEASE: "soon" is not a duration'),
        ({"FLOWLEDGER_LEASE": "100ms"}, "at least 1s"),
        ({"FLOWLEDGER_SQLITE_SYNCHRONOUS": "OFF"}, "must be one of NORMAL, FULL, EXTRA"),
    ],
)
def test_bad_values_are_refused_clearly(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)


def test_step_log_and_retention_settings() -> None:
    default = Settings.from_env({})
    assert (default.step_log_level, default.step_log_limit, default.retention) == (
        "INFO",
        64 * 1024,
        None,
    )
    settings = Settings.from_env(
        {
            "FLOWLEDGER_STEP_LOG_LEVEL": "warning",
            "FLOWLEDGER_STEP_LOG_LIMIT": "8KiB",
            "FLOWLEDGER_RETENTION": "30d",
        }
    )
    assert settings.step_log_level == "WARNING"
    assert settings.step_log_limit == 8192
    assert settings.retention == timedelta(days=30)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"FLOWLEDGER_STEP_LOG_LEVEL": "LOUD"}, "FLOWLEDGER_STEP_LOG_LEVEL must be one of"),
        ({"FLOWLEDGER_STEP_LOG_LIMIT": "12"}, "FLOWLEDGER_STEP_LOG_LIMIT must be at least 1KiB"),
        ({"FLOWLEDGER_RETENTION": "forever"}, "FLOWLEDGER_RETENTION:"),
        ({"FLOWLEDGER_RETENTION": "10s"}, "FLOWLEDGER_RETENTION must be at least 1m"),
    ],
)
def test_bad_step_log_and_retention_values(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)


def test_the_loop_stall_threshold() -> None:
    assert Settings.from_env({}).loop_stall == timedelta(seconds=10)
    settings = Settings.from_env({"FLOWLEDGER_LOOP_STALL": "500ms"})
    assert settings.loop_stall == timedelta(milliseconds=500)
    with pytest.raises(ConfigError, match="FLOWLEDGER_LOOP_STALL must be longer than 0s"):
        Settings.from_env({"FLOWLEDGER_LOOP_STALL": "0s"})
    with pytest.raises(ConfigError, match="FLOWLEDGER_LOOP_STALL:"):
        Settings.from_env({"FLOWLEDGER_LOOP_STALL": "soon"})

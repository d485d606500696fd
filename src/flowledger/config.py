"""Every setting flowledger reads from the environment, typed and checked in one place.

Each has a ``FLOWLEDGER_*`` variable; command-line flags override them.

- ``FLOWLEDGER_DB``: the database URL, ``sqlite:///…`` or ``postgresql://…``
  (default ``sqlite:///flowledger.db`` in the current folder).
- ``FLOWLEDGER_LEASE``: how long an execution stays with a process that stops
  renewing it (default ``30s``).
- ``FLOWLEDGER_SQLITE_SYNCHRONOUS``: SQLite's ``synchronous`` pragma; NORMAL survives
  process crashes, FULL also power loss (default ``NORMAL``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from flowledger.definition.durations import parse_duration
from flowledger.errors import FlowledgerError

DB_ENV = "FLOWLEDGER_DB"
LEASE_ENV = "FLOWLEDGER_LEASE"
SQLITE_SYNCHRONOUS_ENV = "FLOWLEDGER_SQLITE_SYNCHRONOUS"

DEFAULT_DB = "sqlite:///flowledger.db"
DEFAULT_LEASE = timedelta(seconds=30)
MIN_LEASE = timedelta(seconds=1)
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


class ConfigError(FlowledgerError):
    """A setting has a value flowledger cannot use."""


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB
    lease: timedelta = DEFAULT_LEASE
    sqlite_synchronous: str = "NORMAL"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            db_url=env.get(DB_ENV) or DEFAULT_DB,
            lease=parse_lease(env.get(LEASE_ENV), LEASE_ENV)
            if env.get(LEASE_ENV)
            else DEFAULT_LEASE,
            sqlite_synchronous=_synchronous(env.get(SQLITE_SYNCHRONOUS_ENV) or "NORMAL"),
        )


def parse_lease(text: str | None, source: str = "--lease") -> timedelta:
    if not text:
        return DEFAULT_LEASE
    try:
        lease = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if lease < MIN_LEASE:
        raise ConfigError(f"{source}: a lease must be at least 1s, not {text!r}")
    return lease


def _synchronous(value: str) -> str:
    if value.upper() not in SQLITE_SYNCHRONOUS:
        choices = ", ".join(SQLITE_SYNCHRONOUS)
        raise ConfigError(f"{SQLITE_SYNCHRONOUS_ENV} must be one of {choices}, not {value!r}")
    return value.upper()

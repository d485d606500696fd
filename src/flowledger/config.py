"""Every setting flowledger reads from the environment, typed and checked in one place.

Each has a ``FLOWLEDGER_*`` variable; command-line flags override them.

- ``FLOWLEDGER_DB``: the database URL, ``sqlite:///…`` or ``postgresql://…``
  (default ``sqlite:///flowledger.db`` in the current folder).
- ``FLOWLEDGER_LEASE``: how long an execution stays with a process that stops
  renewing it (default ``30s``).
- ``FLOWLEDGER_SQLITE_SYNCHRONOUS``: SQLite's ``synchronous`` pragma; NORMAL survives
  process crashes, FULL also power loss (default ``NORMAL``).
- ``FLOWLEDGER_ARTIFACTS``: the folder for artifacts (files steps save, large outputs);
  default: ``<db file stem>-artifacts`` next to a SQLite file, ``./flowledger-artifacts``
  for PostgreSQL. Workers on several machines must all see the same (shared) folder.
- ``FLOWLEDGER_OUTPUT_BUDGET``: a step output whose JSON is larger is stored as an
  artifact and read back when a template needs it: bytes, or with a unit (``256KiB``,
  ``1MiB``); at least 1KiB (default ``256KiB``).
- ``FLOWLEDGER_HTTP_ALLOW``: where ``sys.http_request`` may go besides public
  addresses: host names, addresses and networks, comma-separated (``127.0.0.1,
  10.0.0.0/8, api.internal``), or ``*`` for anywhere (default: public addresses only;
  see ``flowledger.egress``).
- ``FLOWLEDGER_LOG_FORMAT``: ``text`` (default) or ``json`` (one object per line with
  ``ts, level, logger, message, execution_id, step_id, action``; see ``flowledger.logs``).
- ``FLOWLEDGER_LOG_LEVEL``: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR`` (default:
  ``INFO`` for ``flowledger worker`` and ``serve``, ``WARNING`` for other commands).
- ``FLOWLEDGER_SSE_PER_TOKEN``: live event streams (SSE) one API token may hold open at
  once (default 10; 429 past it).
- ``FLOWLEDGER_WAITS_PER_TOKEN``: long-poll waits (``?wait=N``) one API token may hold
  at once (default 50; 429 past it).
- ``FLOWLEDGER_SSE_KEEPALIVE``: seconds between keep-alive comments on a quiet event
  stream (default 15).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from flowledger.durations import parse_duration
from flowledger.egress import ALLOW_ENV, EgressPolicy
from flowledger.errors import FlowledgerError

DB_ENV = "FLOWLEDGER_DB"
LEASE_ENV = "FLOWLEDGER_LEASE"
SQLITE_SYNCHRONOUS_ENV = "FLOWLEDGER_SQLITE_SYNCHRONOUS"
ARTIFACTS_ENV = "FLOWLEDGER_ARTIFACTS"
OUTPUT_BUDGET_ENV = "FLOWLEDGER_OUTPUT_BUDGET"
LOG_FORMAT_ENV = "FLOWLEDGER_LOG_FORMAT"
LOG_LEVEL_ENV = "FLOWLEDGER_LOG_LEVEL"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SSE_PER_TOKEN_ENV = "FLOWLEDGER_SSE_PER_TOKEN"  # noqa: S105 (a variable name)
WAITS_PER_TOKEN_ENV = "FLOWLEDGER_WAITS_PER_TOKEN"  # noqa: S105 (a variable name)
SSE_KEEPALIVE_ENV = "FLOWLEDGER_SSE_KEEPALIVE"

DEFAULT_DB = "sqlite:///flowledger.db"
DEFAULT_LEASE = timedelta(seconds=30)
MIN_LEASE = timedelta(seconds=1)
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
DEFAULT_OUTPUT_BUDGET = 256 * 1024
MIN_OUTPUT_BUDGET = 1024


class ConfigError(FlowledgerError):
    """A setting has a value flowledger cannot use."""


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB
    lease: timedelta = DEFAULT_LEASE
    sqlite_synchronous: str = "NORMAL"
    #: None: next to the SQLite file, else ./flowledger-artifacts (runtime.artifacts).
    artifacts_dir: str | None = None
    output_budget: int = DEFAULT_OUTPUT_BUDGET
    http_allow: EgressPolicy = field(default_factory=EgressPolicy)
    log_format: str = "text"
    #: None: the command's own default (INFO for long-running ones, else WARNING).
    log_level: str | None = None
    #: Live limits per API token (flowledger.app.limits).
    sse_per_token: int = 10
    waits_per_token: int = 50
    sse_keepalive: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            db_url=env.get(DB_ENV) or DEFAULT_DB,
            lease=parse_lease(env.get(LEASE_ENV), LEASE_ENV)
            if env.get(LEASE_ENV)
            else DEFAULT_LEASE,
            sqlite_synchronous=_synchronous(env.get(SQLITE_SYNCHRONOUS_ENV) or "NORMAL"),
            artifacts_dir=env.get(ARTIFACTS_ENV) or None,
            output_budget=parse_size(env.get(OUTPUT_BUDGET_ENV), OUTPUT_BUDGET_ENV)
            if env.get(OUTPUT_BUDGET_ENV)
            else DEFAULT_OUTPUT_BUDGET,
            http_allow=_egress(env.get(ALLOW_ENV)),
            log_format=_choice(env.get(LOG_FORMAT_ENV) or "text", LOG_FORMATS, LOG_FORMAT_ENV),
            log_level=_choice(env[LOG_LEVEL_ENV], LOG_LEVELS, LOG_LEVEL_ENV)
            if env.get(LOG_LEVEL_ENV)
            else None,
            sse_per_token=_count(env.get(SSE_PER_TOKEN_ENV), SSE_PER_TOKEN_ENV, 10),
            waits_per_token=_count(env.get(WAITS_PER_TOKEN_ENV), WAITS_PER_TOKEN_ENV, 50),
            sse_keepalive=_seconds(env.get(SSE_KEEPALIVE_ENV), SSE_KEEPALIVE_ENV, 15.0),
        )


def _count(text: str | None, source: str, default: int) -> int:
    if not text:
        return default
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"{source} must be a whole number of at least 1, not {text!r}")
    return int(text)


def _seconds(text: str | None, source: str, default: float) -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.01 <= value <= 3600:
        raise ConfigError(f"{source} must be seconds between 0.01 and 3600, not {text!r}")
    return value


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


def _choice(value: str, choices: tuple[str, ...], source: str) -> str:
    for choice in choices:
        if value.strip().lower() == choice.lower():
            return choice
    raise ConfigError(f"{source} must be one of {', '.join(choices)}, not {value!r}")


def _synchronous(value: str) -> str:
    if value.upper() not in SQLITE_SYNCHRONOUS:
        choices = ", ".join(SQLITE_SYNCHRONOUS)
        raise ConfigError(f"{SQLITE_SYNCHRONOUS_ENV} must be one of {choices}, not {value!r}")
    return value.upper()


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2}
_SIZE_UNITS |= {"mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def parse_size(text: str | None, source: str = OUTPUT_BUDGET_ENV) -> int:
    """A byte count: ``262144``, ``256KiB``, ``1MiB`` (units are powers of 1024)."""
    if not text:
        return DEFAULT_OUTPUT_BUDGET
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ConfigError(f"{source} must be a size like 262144, 256KiB or 1MiB, not {text!r}")
    size = int(match.group(1)) * _SIZE_UNITS[unit]
    if size < MIN_OUTPUT_BUDGET:
        raise ConfigError(f"{source} must be at least 1KiB, not {text!r}")
    return size


def _egress(text: str | None) -> EgressPolicy:
    try:
        return EgressPolicy.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

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

Limits on what comes in (see :class:`Limits`; sizes take units like ``1MiB``):

- ``FLOWLEDGER_MAX_BODY``: an HTTP request body (default ``1MiB``; 413 above).
- ``FLOWLEDGER_MAX_JSON_DEPTH``: nesting of arrays and objects in a JSON body (default
  64; 422 above).
- ``FLOWLEDGER_MAX_DEFINITION``: a workflow or job-run definition's text (default
  ``512KiB``; 413 above).
- ``FLOWLEDGER_MAX_INPUT``: a workflow input or a step's submitted input as JSON
  (default ``512KiB``; 413 above).
- ``FLOWLEDGER_MAX_PAGE``: the largest ``limit`` of a listing (default 1000; 422 above).
- ``FLOWLEDGER_MAX_STREAMS``, ``FLOWLEDGER_MAX_WAITS``: event streams and long-poll
  waits one token may hold open at once (defaults 10 and 50; 429 above).
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

LIMIT_ENVS = {
    "max_body": "FLOWLEDGER_MAX_BODY",
    "max_json_depth": "FLOWLEDGER_MAX_JSON_DEPTH",
    "max_definition": "FLOWLEDGER_MAX_DEFINITION",
    "max_input": "FLOWLEDGER_MAX_INPUT",
    "max_page": "FLOWLEDGER_MAX_PAGE",
    "max_streams": "FLOWLEDGER_MAX_STREAMS",
    "max_waits": "FLOWLEDGER_MAX_WAITS",
}
#: The limits that are byte sizes (the others are counts).
SIZE_LIMITS = ("max_body", "max_definition", "max_input")

DEFAULT_DB = "sqlite:///flowledger.db"
DEFAULT_LEASE = timedelta(seconds=30)
MIN_LEASE = timedelta(seconds=1)
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
DEFAULT_OUTPUT_BUDGET = 256 * 1024
MIN_OUTPUT_BUDGET = 1024


class ConfigError(FlowledgerError):
    """A setting has a value flowledger cannot use."""


@dataclass(frozen=True)
class Limits:
    """What one request may carry; faces and the application layer enforce these, each
    refusal naming its limit (413 for sizes, 422 for depth and page size, 429 for
    concurrent streams and waits)."""

    max_body: int = 1024 * 1024
    max_json_depth: int = 64
    max_definition: int = 512 * 1024
    max_input: int = 512 * 1024
    max_page: int = 1000
    max_streams: int = 10
    max_waits: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        values: dict[str, int] = {}
        for name, var in LIMIT_ENVS.items():
            text = env.get(var)
            if not text:
                continue
            if name in SIZE_LIMITS:
                values[name] = parse_size(text, var, minimum=1024)
            elif text.strip().isdigit() and int(text) >= 1:
                values[name] = int(text)
            else:
                raise ConfigError(f"{var} must be a whole number of at least 1, not {text!r}")
        return cls(**values)


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
    limits: Limits = field(default_factory=Limits)

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
            limits=Limits.from_env(env),
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


def parse_size(
    text: str | None, source: str = OUTPUT_BUDGET_ENV, *, minimum: int = MIN_OUTPUT_BUDGET
) -> int:
    """A byte count: ``262144``, ``256KiB``, ``1MiB`` (units are powers of 1024)."""
    if not text:
        return DEFAULT_OUTPUT_BUDGET
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ConfigError(f"{source} must be a size like 262144, 256KiB or 1MiB, not {text!r}")
    size = int(match.group(1)) * _SIZE_UNITS[unit]
    if size < minimum:
        raise ConfigError(f"{source} must be at least 1KiB, not {text!r}")
    return size


def _egress(text: str | None) -> EgressPolicy:
    try:
        return EgressPolicy.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

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
- ``FLOWLEDGER_OTEL``: ``1`` (or ``true``) sends OpenTelemetry traces: a span per
  execution and per step attempt, ``traceparent`` carried into ``sys.http_request``
  calls and sub-workflows and accepted from API and hook requests; by every process
  that runs executions (``serve``, ``worker``, and ``run``, ``jobs run``, ``executions
  input|retry|rerun|cancel`` in the foreground). Needs the ``otel`` extra (``pip
  install 'flowledger[otel]'``; without it those commands exit 2); the OTLP exporter
  reads the standard ``OTEL_EXPORTER_OTLP_*`` variables (default off).
- ``FLOWLEDGER_LOG_FORMAT``: ``text`` (default) or ``json`` (one object per line with
  ``ts, level, logger, message, execution_id, step_id, action``; see ``flowledger.logs``).
- ``FLOWLEDGER_LOG_LEVEL``: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR`` (default:
  ``INFO`` for ``flowledger worker`` and ``serve``, ``WARNING`` for other commands).
- ``FLOWLEDGER_STEP_LOG_LEVEL``: the lowest level of what step handlers log through
  ``ctx.logger`` that is kept with the step attempt (``DEBUG``, ``INFO``, ``WARNING``,
  ``ERROR``; default ``INFO``), shown by ``flowledger executions logs``.
- ``FLOWLEDGER_STEP_LOG_LIMIT``: the bytes of log messages one step attempt keeps (a size
  like ``FLOWLEDGER_OUTPUT_BUDGET``; default ``64KiB``); later lines are dropped, and one
  warning line says how many.
- ``FLOWLEDGER_RETENTION``: when set (a duration like ``30d``), workers delete finished
  executions whose end is older than that, with everything they hold (see
  ``flowledger executions prune``); at least ``1m``; default: keep everything.
- ``FLOWLEDGER_LOOP_STALL``: how long the event loop of ``worker``, ``serve`` or ``run``
  may go without running before the process logs a warning naming the code that blocks
  it (an async step handler calling blocking code); a SIGTERM or SIGINT the blocked loop
  has not acted on for as long again exits ``worker`` or ``serve`` with code 1 (a
  duration; default ``10s``; see ``flowledger.worker.watchdog``).
- ``FLOWLEDGER_HOOK_BODY_LIMIT``: the largest body ``POST /hooks/{path}`` accepts (a size
  like ``FLOWLEDGER_OUTPUT_BUDGET``; default ``1MiB``); larger ones are answered 413.
- ``FLOWLEDGER_DELIVERY_RETRY_INITIAL``, ``FLOWLEDGER_DELIVERY_RETRY_MAX``,
  ``FLOWLEDGER_DELIVERY_RETRY_FOR``: the outbound webhook retry schedule (durations):
  the first retry waits about ``INITIAL`` (default ``5s``), each next one twice as long
  up to ``MAX`` (default ``30m``), with jitter; a delivery still failing ``FOR`` after
  its event (default ``24h``) is given up (``failed``).
- ``FLOWLEDGER_DELIVERY_TIMEOUT``: how long one delivery attempt may take (default ``10s``).
- Workflow secrets (``{{ secrets.NAME }}``): only names the operator opened are
  readable, never the whole environment. ``FLOWLEDGER_SECRET_NAME`` holds the secret
  ``NAME`` (``FLOWLEDGER_SECRET_API_KEY`` → ``secrets.API_KEY``);
  ``FLOWLEDGER_SECRETS_FILE`` names a file of ``NAME=value`` lines (``#`` comments);
  ``FLOWLEDGER_SECRETS`` lists plain environment variables opened as secrets under
  their own names (``API_KEY,DB_PASSWORD``). Read by :func:`read_secret`, nowhere else.
- Webhook trigger secrets: a trigger's ``secret_env: NAME`` names the variable that holds
  its Standard Webhooks secret (``whsec_…``); several secrets separated by spaces or
  commas are all accepted (rotation). Read by :func:`webhook_secrets`, nowhere else.

Limits on what comes in (see :class:`Limits`; sizes take units like ``1MiB``):

- ``FLOWLEDGER_MAX_BODY``: an HTTP request body (default ``1MiB``; 413 above).
- ``FLOWLEDGER_MAX_JSON_DEPTH``: nesting of arrays and objects in a JSON body (default
  64; 422 above).
- ``FLOWLEDGER_MAX_DEFINITION``: a workflow or job-run definition's text (default
  ``512KiB``; 413 above).
- ``FLOWLEDGER_MAX_INPUT``: a workflow input or a step's submitted input as JSON, also
  the CLI's ``--input``, ``--input-file``, ``--data`` and ``--filter`` (default
  ``512KiB``; 413 above; see ``flowledger.app.inputs``).
- ``FLOWLEDGER_MAX_PAGE``: the largest ``limit`` of a listing (default 1000; 422 above).
- ``FLOWLEDGER_MAX_STREAMS``, ``FLOWLEDGER_MAX_WAITS``: event streams and long-poll
  waits one token may hold open at once (defaults 10 and 50; 429 above).
- ``FLOWLEDGER_MAX_DESCENDANTS``: sub-workflow executions one root execution may start,
  children of children included (default 100000); a ``sys.sub_workflow`` step that would
  go past it fails, not retried, saying so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from flowledger.durations import parse_duration, spoken
from flowledger.egress import ALLOW_ENV, EgressPolicy
from flowledger.errors import FlowledgerError

DB_ENV = "FLOWLEDGER_DB"
LEASE_ENV = "FLOWLEDGER_LEASE"
SQLITE_SYNCHRONOUS_ENV = "FLOWLEDGER_SQLITE_SYNCHRONOUS"
ARTIFACTS_ENV = "FLOWLEDGER_ARTIFACTS"
OUTPUT_BUDGET_ENV = "FLOWLEDGER_OUTPUT_BUDGET"
CURSOR_KEY_ENV = "FLOWLEDGER_CURSOR_KEY"
LOG_FORMAT_ENV = "FLOWLEDGER_LOG_FORMAT"
LOG_LEVEL_ENV = "FLOWLEDGER_LOG_LEVEL"
HOOK_BODY_LIMIT_ENV = "FLOWLEDGER_HOOK_BODY_LIMIT"
RETRY_INITIAL_ENV = "FLOWLEDGER_DELIVERY_RETRY_INITIAL"
RETRY_MAX_ENV = "FLOWLEDGER_DELIVERY_RETRY_MAX"
RETRY_FOR_ENV = "FLOWLEDGER_DELIVERY_RETRY_FOR"
DELIVERY_TIMEOUT_ENV = "FLOWLEDGER_DELIVERY_TIMEOUT"
OTEL_ENV = "FLOWLEDGER_OTEL"
STEP_LOG_LEVEL_ENV = "FLOWLEDGER_STEP_LOG_LEVEL"
STEP_LOG_LIMIT_ENV = "FLOWLEDGER_STEP_LOG_LIMIT"
RETENTION_ENV = "FLOWLEDGER_RETENTION"
LOOP_STALL_ENV = "FLOWLEDGER_LOOP_STALL"
DEFAULT_STEP_LOG_LIMIT = 64 * 1024
SECRET_PREFIX = "FLOWLEDGER_SECRET_"  # noqa: S105 - a variable name prefix
SECRETS_FILE_ENV = "FLOWLEDGER_SECRETS_FILE"
SECRETS_LIST_ENV = "FLOWLEDGER_SECRETS"
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
    "max_descendants": "FLOWLEDGER_MAX_DESCENDANTS",
}
MAX_STEP_CUTS_ENV = "FLOWLEDGER_MAX_STEP_CUTS"
#: The largest count limit: the database's integer columns hold less than 2**31.
MAX_COUNT_LIMIT = 1_000_000_000
#: The limits that are byte sizes (the others are counts).
SIZE_LIMITS = ("max_body", "max_definition", "max_input")

DEFAULT_DB = "sqlite:///flowledger.db"
DEFAULT_LEASE = timedelta(seconds=30)
MIN_LEASE = timedelta(seconds=1)
#: The shortest age a prune takes (FLOWLEDGER_RETENTION, --older-than, the API's olderThan).
MIN_RETENTION = timedelta(minutes=1)
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
#: How long a SQLite statement waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000
DEFAULT_OUTPUT_BUDGET = 256 * 1024
DEFAULT_LOOP_STALL = timedelta(seconds=10)
MIN_OUTPUT_BUDGET = 1024
DEFAULT_HOOK_BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class DeliverySchedule:
    """When outbound webhook deliveries are retried (worker.deliveries)."""

    #: About how long the first retry waits; each next one waits twice as long, up to ``max``.
    initial: timedelta = timedelta(seconds=5)
    max: timedelta = timedelta(minutes=30)
    #: A delivery still failing this long after its event is given up.
    retry_for: timedelta = timedelta(hours=24)
    #: How long one attempt may take (connect, send, answer).
    timeout: timedelta = timedelta(seconds=10)


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
    #: Sub-workflow executions one root execution may start, at every level below it:
    #: the depth cap alone let a workflow that starts three copies of itself make 88,573.
    max_descendants: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        values: dict[str, int] = {}
        for name, var in LIMIT_ENVS.items():
            text = env.get(var)
            if not text:
                continue
            if name in SIZE_LIMITS:
                values[name] = parse_size(text, var, minimum=1024)
            elif text.strip().isdigit() and 1 <= int(text) <= MAX_COUNT_LIMIT:
                values[name] = int(text)
            else:
                raise ConfigError(
                    f"{var} must be a whole number from 1 to {MAX_COUNT_LIMIT:,}, not {text!r}"
                )
        return cls(**values)


def current_limits(environ: Mapping[str, str] | None = None) -> Limits:
    """The limits the environment sets (``FLOWLEDGER_MAX_*``), for readers of input that
    run before an application is open (the CLI parsing ``--input``)."""
    return Limits.from_env(os.environ if environ is None else environ)


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
    #: Signs list cursors; None: a random secret kept once per database (app.cursors).
    cursor_key: str | None = None
    hook_body_limit: int = DEFAULT_HOOK_BODY_LIMIT
    deliveries: DeliverySchedule = field(default_factory=DeliverySchedule)
    limits: Limits = field(default_factory=Limits)
    #: OpenTelemetry traces (``FLOWLEDGER_OTEL``).
    otel: bool = False
    #: Step logs kept from this level up (``FLOWLEDGER_STEP_LOG_LEVEL``).
    step_log_level: str = "INFO"
    #: Bytes of log messages one step attempt keeps (``FLOWLEDGER_STEP_LOG_LIMIT``).
    step_log_limit: int = DEFAULT_STEP_LOG_LIMIT
    #: Workers prune finished executions older than this (``FLOWLEDGER_RETENTION``);
    #: None keeps them.
    retention: timedelta | None = None
    #: The event loop stalled this long is reported (``FLOWLEDGER_LOOP_STALL``).
    loop_stall: timedelta = DEFAULT_LOOP_STALL
    #: A step cut this many times by its process's death is failed; 0: never
    #: (``FLOWLEDGER_MAX_STEP_CUTS``, runtime.recovery).
    max_step_cuts: int = 5

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
            cursor_key=env.get(CURSOR_KEY_ENV) or None,
            hook_body_limit=parse_size(env.get(HOOK_BODY_LIMIT_ENV), HOOK_BODY_LIMIT_ENV)
            if env.get(HOOK_BODY_LIMIT_ENV)
            else DEFAULT_HOOK_BODY_LIMIT,
            deliveries=_schedule(env),
            limits=Limits.from_env(env),
            otel=_flag(env.get(OTEL_ENV), OTEL_ENV),
            step_log_level=_choice(
                env.get(STEP_LOG_LEVEL_ENV) or "INFO", LOG_LEVELS, STEP_LOG_LEVEL_ENV
            ),
            step_log_limit=parse_size(env.get(STEP_LOG_LIMIT_ENV), STEP_LOG_LIMIT_ENV)
            if env.get(STEP_LOG_LIMIT_ENV)
            else DEFAULT_STEP_LOG_LIMIT,
            retention=parse_retention(env[RETENTION_ENV], RETENTION_ENV)
            if env.get(RETENTION_ENV)
            else None,
            loop_stall=_positive(env[LOOP_STALL_ENV], LOOP_STALL_ENV)
            if env.get(LOOP_STALL_ENV)
            else DEFAULT_LOOP_STALL,
            max_step_cuts=_count(env[MAX_STEP_CUTS_ENV], MAX_STEP_CUTS_ENV)
            if env.get(MAX_STEP_CUTS_ENV)
            else 5,
        )


def _count(text: str, var: str) -> int:
    """A whole number from 0 (the settings where 0 means "never")."""
    if text.strip().isdigit() and int(text) <= MAX_COUNT_LIMIT:
        return int(text)
    raise ConfigError(f"{var} must be a whole number from 0 to {MAX_COUNT_LIMIT:,}, not {text!r}")


def webhook_secrets(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets in the environment variable ``name`` that a webhook trigger's
    ``secret_env`` names: one, or several separated by spaces or commas (while a sender
    rotates its secret); an empty list when the variable is unset or blank."""
    env = os.environ if environ is None else environ
    return [part for part in re.split(r"[\s,]+", env.get(name, "")) if part]


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the workflow secret ``name`` if the operator opened it (see the module
    docstring), else None. Nothing else of the environment is reachable this way."""
    env = os.environ if environ is None else environ
    value = env.get(SECRET_PREFIX + name)
    if value is not None:
        return value
    path = env.get(SECRETS_FILE_ENV)
    if path:
        value = _secrets_file(path).get(name)
        if value is not None:
            return value
    opened = {part for part in re.split(r"[\s,]+", env.get(SECRETS_LIST_ENV, "")) if part}
    return env.get(name) if name in opened else None


def _secrets_file(path: str) -> dict[str, str]:
    """``NAME=value`` lines of a secrets file; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{SECRETS_FILE_ENV}: cannot read {path}: {exc}") from None
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        found[key.strip()] = value.strip()
    return found


def _schedule(env: Mapping[str, str]) -> DeliverySchedule:
    default = DeliverySchedule()

    def duration(name: str, fallback: timedelta) -> timedelta:
        text = env.get(name)
        return _positive(text, name) if text else fallback

    return DeliverySchedule(
        initial=duration(RETRY_INITIAL_ENV, default.initial),
        max=duration(RETRY_MAX_ENV, default.max),
        retry_for=duration(RETRY_FOR_ENV, default.retry_for),
        timeout=duration(DELIVERY_TIMEOUT_ENV, default.timeout),
    )


def _positive(text: str, name: str) -> timedelta:
    """A duration longer than zero, read from the variable ``name``."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if value <= timedelta(0):
        raise ConfigError(f"{name} must be longer than 0s, not {text!r}")
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


def parse_retention(text: str, source: str = "--older-than") -> timedelta:
    """An age for pruning: a duration of at least one minute (``30d``, ``12h``)."""
    try:
        age = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if age < MIN_RETENTION:
        raise ConfigError(f"{source} must be at least {spoken(MIN_RETENTION)}, not {text!r}")
    return age


def _flag(text: str | None, source: str) -> bool:
    value = (text or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{source} must be 1 or 0, not {text!r}")


def lone_log_format(env: Mapping[str, str]) -> str:
    """``FLOWLEDGER_LOG_FORMAT`` read on its own (``text`` unless it names a format): the
    format to report a bad setting in, when that setting kept the others from being read."""
    try:
        return _choice(env.get(LOG_FORMAT_ENV) or "text", LOG_FORMATS, LOG_FORMAT_ENV)
    except ConfigError:
        return "text"


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

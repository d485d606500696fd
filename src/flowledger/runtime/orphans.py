"""Finding executions that a stopped `flowledger run` left unfinished, to finish them.

A `flowledger run` process that was interrupted (Ctrl-C) released its execution;
one that was killed still holds a lease until it lapses. Its owner name is
``host:pid:nonce``, so on the same host a dead pid proves the holder is gone and
the execution can be taken at once instead of after the lease.

``host`` is the host name with a digest of this boot of the machine and of the process
id namespace (``name~1a2b3c4d`` on Linux): two machines, or two containers, given the
same host name must never read each other's pids, or a live holder elsewhere would be
taken for dead.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flowledger.codec import Codec, loads, same_json
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.runtime.creation import plain_input, validate_input
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage import ExecutionQuery, Store


@functools.cache
def this_host() -> str:
    """This machine and process id namespace, as owner names give it."""
    name = socket.gethostname().replace(":", "_")
    parts = []
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    if not parts:  # no such files (not Linux): the name alone
        return name
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]
    return f"{name}~{digest}"


def process_owner() -> str:
    """A new owner name for this process: ``host:pid:nonce``."""
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != this_host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user's process
    return _ended_not_reaped(pid)


def _ended_not_reaped(pid: int) -> bool:
    """The process has ended and waits for its parent to reap it (a zombie: Linux's state
    ``Z``), which answers a signal as if alive. A killed worker whose parent had gone was
    reaped by this machine's init only a second or two later: a cancel meanwhile waited
    on its children as on a live holder's (tour 19, F7)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # not Linux, or it has just been reaped (then the next look says so)
    return stat.rpartition(")")[2].split()[:1] == ["Z"]  # after "pid (name)": the state


def holder_words(holder: str | None, me: str) -> str:
    """Who ``holder`` (a lease owner) is, as seen by the owner ``me``, for a message: this
    same Engine, another Engine in this process, a process on this host that has ended,
    or another process."""
    if not holder:
        return "nobody"
    if holder == me:
        return "this Engine"
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host == this_host() and pid == str(os.getpid()):
        return "another Engine in this process"
    if owner_is_dead(holder):
        return f"a process on this host that has ended (pid {pid})"
    where = "this host" if host == this_host() else f"host {host.partition('~')[0]}"
    return f"another process (pid {pid} on {where})" if pid.isdigit() else "another process"


def abandoned(row: Mapping[str, Any], now: datetime) -> bool:
    """Nobody is running this execution: lease released, lapsed, or its holder is dead."""
    owner = row["lease_owner"]
    if owner is None:
        return True
    expires = row["lease_expires_at"]
    return (expires is not None and expires < now) or owner_is_dead(owner)


async def adopt_abandoned(
    store: Store, owner: str, lease: timedelta, workflow_name: str, created_by: str
) -> list[str]:
    """Lease to ``owner`` the unfinished executions of ``workflow_name`` that a stopped
    process of ``created_by`` started; returns their ids."""
    now = await store.db_now()
    taken = []
    for status in (ExecutionStatus.IN_PROGRESS, ExecutionStatus.NOT_STARTED):
        query = ExecutionQuery(status=status, workflow=workflow_name, limit=100)
        for row in await store.list_executions(query):
            if row["created_by"] != created_by or not abandoned(row, now):
                continue
            dead = row["lease_owner"] if owner_is_dead(row["lease_owner"]) else None
            epoch = await store.acquire_lease(row["id"], owner, lease, steal_from=dead)
            if epoch is not None:
                taken.append(row["id"])
    return taken


async def left_by_same_run(
    store: Store,
    left: list[str],
    workflow: CompiledWorkflow,
    *,
    version_id: str,
    given: Mapping[str, Any] | None,
    correlation_id: str | None,
) -> str | None:
    """The first of ``left`` (abandoned executions :func:`adopt_abandoned` took, in
    progress before not started, newest first) that a run of the version ``version_id``
    of ``workflow`` with this same input and correlation id started: a run carries it on
    instead of doing its work again (tour 24: a rerun of a killed ETL run fetched every
    page twice). Inputs are compared redacted, as the stored one is once its run began."""
    codec = Codec.for_names(workflow.secret_names)
    wanted = loads(codec.dumps(validate_input(workflow, plain_input(given))))
    for execution_id in left:
        row = await store.get_execution(execution_id)
        if row is None or row["workflow_version_id"] != version_id:
            continue
        # Started without one, an execution holds its own id as its correlation id.
        correlation = row["correlation_id"]
        if (None if correlation == row["id"] else correlation) != correlation_id:
            continue
        stored = loads(row["trigger"] or "{}").get("arguments")
        if same_json(loads(codec.dumps(stored)), wanted):
            return execution_id
    return None

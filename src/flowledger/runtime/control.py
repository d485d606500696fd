"""What people do to executions from outside: submit input, cancel, retry, rerun.

Input and cancel are *signals*: rows any process may write, acted on by whoever
owns the execution at its next round (and they wake a parked execution). Retry
and rerun rewrite nothing that happened: retry appends new attempts to a failed
execution; rerun creates a new execution that starts from copies of the original's
finished steps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC
from typing import Any, Literal, NamedTuple

from flowledger.artifacts.service import is_reference
from flowledger.codec import Codec, loads
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.graph import ancestors
from flowledger.definition.races import race_of
from flowledger.errors import (
    ConflictError,
    InputError,
    LeaseLostError,
    NotFoundError,
    did_you_mean,
)
from flowledger.jsonvalues import NotJSONError, check_json_value, to_plain
from flowledger.runtime import inbox
from flowledger.runtime.attempts import changes_made
from flowledger.runtime.creation import Lineage, execution_rows
from flowledger.runtime.deadline import execution_deadline
from flowledger.runtime.documents import pending_inputs as waiting_for_input
from flowledger.runtime.documents import waits_for_input
from flowledger.runtime.drivers import RESUMED_ON_RETRY
from flowledger.runtime.ids import random_uuid
from flowledger.runtime.missing import execution_row
from flowledger.runtime.orphans import process_owner
from flowledger.runtime.ports import Control
from flowledger.runtime.rerun_artifacts import copy_artifacts, forget_copies
from flowledger.runtime.status import ExecutionStatus, StepStatus
from flowledger.runtime.waits import input_signal_id, outside_wait_of, taken_by
from flowledger.schema_check import check_against_schema, validator_for
from flowledger.steps.builtins import apply_variable_op, variable_after
from flowledger.storage import Batch, Row
from flowledger.storage.base import RowParams, SignalBlocked
from flowledger.timeutil import iso

#: Statuses a step keeps from the original when a rerun reuses it.
REUSABLE = frozenset({StepStatus.COMPLETED, StepStatus.DISABLED})

#: How many of a live holder's looks for signals a control verb waits through (see
#: :func:`holder_wait`): its next one, and the rest for a loaded machine's round and
#: commit, and for a cancel to reach children, whose holders look after the parent's.
HOLDER_LOOKS = 5


def holder_wait() -> float:
    """Seconds a cancel or an input waits for the process holding the execution to act
    on it before answering it pending: a live holder takes signals at its next look
    (every runtime.inbox.POLL_INTERVAL; a parked execution is claimed by a woken worker
    at once), so the wait follows that interval, read when asked. Not the lease: a holder
    known gone is taken over at once (its pid ended here), and one gone elsewhere is
    taken over by whoever finds its lease lapsed; the caller is not held that long."""
    return HOLDER_LOOKS * inbox.POLL_INTERVAL


def _latest(rows: list[Row]) -> dict[tuple[str, str], Row]:
    """The newest attempt of every step iteration: (loop_key, step_path) → row."""
    latest: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row["loop_key"], row["step_path"])
        if key not in latest or row["attempt"] > latest[key]["attempt"]:
            latest[key] = row
    return latest


# -- input --------------------------------------------------------------------------------


async def submit_input(
    engine: Control, execution_id: str, step: str, data: Any, submitted_by: str
) -> str:
    """Check ``data`` against the waiting step's schema and hand it over; returns the step
    execution id. The step keeps waiting (nothing is recorded) when the data is refused.
    A custom step parked by ``Suspend(until=None)`` (runtime.waits) takes any JSON."""
    # What JSON cannot hold (NaN, an object) is refused naming its place, as every face
    # refuses it (InvalidInputError): the codec raised its own ValueError (tour 23 F5).
    check_json_value(data, "data")
    check_json_value(submitted_by, "submitted_by")  # a lone surrogate: no UTF-8 for it
    try:
        data = to_plain(data, "data")
    except NotJSONError as exc:
        raise InputError(str(exc)) from None
    row = await execution_row(engine.store, execution_id)
    status = ExecutionStatus(row["runtime_status"])
    if status.terminal:
        raise ConflictError(f"execution {execution_id} is {status}; it waits for no input")
    rows = list(_latest(await engine.store.get_step_executions(execution_id)).values())
    waiting = [r for r in rows if waits_for_input(r) or outside_wait_of(r) is not None]
    chosen = [r for r in waiting if step in (r["step_id"], r["id"])]
    if not chosen:
        named = [r for r in rows if r["step_id"] == step]
        if named and _woken_by_input(named[-1]):
            raise ConflictError(
                f"step '{step}' of execution {execution_id} has been answered already; "
                "it takes the first answer sent while it waits only"
            )
        if named and named[-1]["suspended"] and named[-1]["wake_at"]:
            raise ConflictError(  # a sys.delay's, or a type's with no resume= to read it
                f"step '{step}' of execution {execution_id} waits for a time (until "
                f"{iso(named[-1]['wake_at'])}), not for input"
            )
        if named:
            raise ConflictError(
                f"step '{step}' of execution {execution_id} is not waiting for input "
                f"(it is {named[-1]['status']})"
            )
        open_steps = ", ".join(sorted({r["step_id"] for r in waiting})) or "none"
        raise NotFoundError(
            f"execution {execution_id} has no step '{step}' waiting for input "
            f"(steps waiting for input: {open_steps}){await _children_waits(engine, execution_id)}"
        )
    if len(chosen) > 1:
        ids = ", ".join(r["id"] for r in chosen)
        raise InputError(
            f"step '{step}' waits in {len(chosen)} loop iterations; name one by its step "
            f"execution id instead: {ids}"
        )
    target = chosen[0]
    now = engine.clock.now()
    due = target["due_at"]
    if due is not None and (due if due.tzinfo else due.replace(tzinfo=UTC)) <= now:
        # Its timeout is decided by the due time, not by when a worker comes by: an
        # answer after it must not win because no worker ran at that moment.
        raise ConflictError(
            f"step '{target['step_id']}' of execution {execution_id} was due at {iso(due)}; "
            "it takes no input after that (its timeout applies: the on_timeout default, "
            "else the step fails; a process that runs executions applies it, `flowledger "
            "worker` or `flowledger serve`, at once if one is running)"
        )
    schema = (loads(target["input"]) or {}).get("schema")
    if schema is not None:
        check_against_schema(
            validator_for(schema),
            data,
            "data",
            f"the data does not match the schema of step '{target['step_id']}' (it keeps waiting)",
        )
    payload: dict[str, Any] = {
        "stepExecutionId": target["id"],
        "data": data,
        "submittedBy": submitted_by,
        "at": iso(now),
    }
    signal = _signal(execution_id, "input", payload, submitted_by, now, step_id=target["step_id"])
    # Its id is the step execution's: a step takes one answer, the first one sent, even
    # while it is still waiting (the runner applies it at its next round). One parked for
    # the outside takes one per wait (it may park again once woken).
    taken = outside_wait_of(target)
    if taken is None:
        signal["id"] = target["id"]
    else:
        payload["wait"] = taken
        signal["payload"] = Codec().dumps(payload)
        signal["id"] = input_signal_id(target["id"], taken)
    try:  # its write wakes the idle workers too
        sent = await engine.store.send_signal(signal, unless_pending="cancel")
    except SignalBlocked:  # taken, it would never be applied: the runner cancels first
        raise ConflictError(
            f"execution {execution_id} is being cancelled; it takes no input"
        ) from None
    if not sent:
        raise ConflictError(
            f"step '{target['step_id']}' of execution {execution_id} has been answered "
            "already; it takes the first answer only"
        )
    return str(target["id"])


def _woken_by_input(row: Row) -> bool:
    """Parked for the outside, woken by an input, its resume running (runtime.waits)."""
    suspended = row["status"] == StepStatus.IN_PROGRESS and row["suspended"]
    return bool(suspended and row["wake_at"] is None and taken_by(loads(row["state"])))


def _signal(
    execution_id: str,
    kind: str,
    payload: Mapping[str, Any],
    by: str,
    now: Any,
    step_id: str | None = None,
) -> Row:
    return {
        "id": str(uuid.uuid4()),
        "execution_id": execution_id,
        "kind": kind,
        "step_id": step_id,
        "payload": Codec().dumps(dict(payload)),
        "created_by": by,
        "created_at": now,
        "consumed_at": None,
    }


async def pending_inputs(engine: Control, execution_id: str) -> list[dict[str, Any]]:
    """Every step waiting for input in this execution and its children, deepest last. A
    step answered already waits for a runner to apply the answer, not for a person: not
    listed (asked again, the command would only say it has been answered)."""
    found: list[dict[str, Any]] = []
    queue = [execution_id]
    while queue:
        current = queue.pop(0)
        rows = list(_latest(await engine.store.get_step_executions(current)).values())
        found.extend(await unanswered(engine, current, waiting_for_input(rows, current)))
        for row in rows:
            if row["status"] == StepStatus.IN_PROGRESS:
                queue.extend(loads(row["children"]) or [])
    return found


#: Waiting child executions an input sent to their parent names, at most.
NAMED_CHILDREN = 10


async def _children_waits(engine: Control, execution_id: str) -> str:
    """``; its child executions wait for input: … at step 'ask'; answer the child`` when
    the people the execution waits for are its descendants' (tour 25 L1)."""
    below = [
        w for w in await pending_inputs(engine, execution_id) if w["executionId"] != execution_id
    ]
    if not below:
        return ""
    named = list(dict.fromkeys(f"{w['executionId']} at step '{w['stepId']}'" for w in below))
    more = f" and {len(named) - NAMED_CHILDREN} more" if len(named) > NAMED_CHILDREN else ""
    return (
        f"; its child executions wait for input: {', '.join(named[:NAMED_CHILDREN])}{more}; "
        "send the input to the child execution, by its id"
    )


async def unanswered(
    engine: Control, execution_id: str, waiting: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Of the execution's steps ``waiting`` for input, those nobody has answered yet (an
    answer waits for the execution's runner as an unconsumed signal)."""
    if not waiting:
        return waiting
    signals = await engine.store.pending_signals(execution_id)
    answered = {s["id"] for s in signals if s["kind"] == "input"}
    return [w for w in waiting if w["stepExecutionId"] not in answered]


# -- cancel -------------------------------------------------------------------------------


async def request_cancel(engine: Control, execution_id: str, by: str, reason: str) -> None:
    check_json_value(reason, "reason")  # a lone surrogate: no UTF-8 for it
    check_json_value(by, "by")
    row = await execution_row(engine.store, execution_id)
    status = ExecutionStatus(row["runtime_status"])
    if status.terminal:
        raise ConflictError(f"execution {execution_id} already ended: {status}")
    now = engine.clock.now()
    await engine.store.send_signal(_signal(execution_id, "cancel", {"reason": reason}, by, now))


# -- retry --------------------------------------------------------------------------------


class Retried(NamedTuple):
    """What a retry did: the steps that will run again, and the event it committed."""

    steps: list[str]
    event: Row
    workflow: str


async def retry(engine: Control, execution_id: str, by: str) -> Retried:
    """Re-open a failed execution: every failed or cancelled step gets attempt + 1 (queued),
    completed outputs stay."""
    row = await execution_row(engine.store, execution_id)
    _check_retryable(execution_id, row)
    workflow = await engine.workflow_for_version(row["workflow_version_id"])
    _check_in_time(execution_id, workflow, row, engine.clock.now())
    # The retry takes the lease as an owner of its own, not as this process: a take by
    # the same owner always succeeds, so a second retry here (two requests at once) took
    # it from under the first, whose write then failed as a lost lease (503) where the
    # other retry had simply won.
    epoch = await engine.store.acquire_lease(execution_id, process_owner(), engine.lease)
    if epoch is None:  # another retry, or a runner, has it right now
        raise _being_changed(execution_id)
    try:
        # Read again under the lease: a retry that won the race has re-opened it.
        _check_retryable(execution_id, await execution_row(engine.store, execution_id))
        steps = await engine.store.get_step_executions(execution_id)
        again = _retry_rows(workflow, steps, engine.clock.now())
        seq = await engine.store.last_event_seq(execution_id)  # the row's may lag
        codec = Codec()
        now = engine.clock.now()
        detail = {"by": by, "steps": sorted({r["step_id"] for r in again})}
        retried = _event(execution_id, seq + 1, now, "execution.retried", None, codec.dumps(detail))
        events: list[RowParams] = [retried]
        batch = Batch(
            execution_id,
            epoch,
            execution={
                "runtime_status": str(ExecutionStatus.IN_PROGRESS),
                "failed_at": None,
                "completed_at": None,
                "error": None,
                "event_seq": seq + 1,
                "last_activity_at": now,
            },
            insert_steps=[*again],
            events=events,
        )
        try:
            await engine.store.commit(batch)
        except LeaseLostError:  # taken meanwhile (the lease lapsed): nothing was written
            raise _being_changed(execution_id) from None
    finally:
        await engine.store.release_lease(execution_id, epoch)
    await engine.store.notify_work()
    return Retried(sorted({r["step_id"] for r in again}), retried, workflow.name)


def _being_changed(execution_id: str) -> ConflictError:
    return ConflictError(
        f"execution {execution_id} is being retried or run by someone else right now; "
        "look at it again"
    )


def _check_retryable(execution_id: str, row: Row) -> None:
    if row["runtime_status"] != ExecutionStatus.FAILED:
        raise ConflictError(
            f"only a Failed execution can be retried; {execution_id} is {row['runtime_status']}"
        )


def _check_in_time(execution_id: str, workflow: CompiledWorkflow, row: Row, now: Any) -> None:
    """A retry keeps the execution's start, and so its workflow's deadline
    (runtime.deadline): one after it would fail again at once."""
    deadline = execution_deadline(workflow, row["started_at"])
    if deadline is not None and deadline <= now:
        raise ConflictError(
            f"execution {execution_id} cannot be retried: its workflow's timeout passed at "
            f"{iso(deadline)}, and a retry keeps its start; rerun it (executions rerun "
            f"{execution_id} --from STEP_ID) for a new execution with a timeout of its own"
        )


def _retry_rows(workflow: CompiledWorkflow, steps: list[Row], now: Any) -> list[Row]:
    next_seq = max((r["seq"] for r in steps), default=0) + 1
    again: list[Row] = []
    latest = _latest(steps)
    for row in latest.values():
        status = StepStatus(row["status"])
        step = workflow.steps.get(row["step_id"])
        if step is None:
            continue
        failed = status == StepStatus.FAILED and not step.spec.continue_on_error
        if not failed and status != StepStatus.CANCELLED:
            continue
        if _lost_a_race(workflow, latest, row):
            continue  # its race stays decided: the retry's join has run
        # A loop resumes its iterations (completed ones stay); others start afresh.
        resumes = step.step_type.kind in RESUMED_ON_RETRY
        again.append(
            {
                **dict.fromkeys(_STEP_NULLS),
                "id": str(uuid.uuid4()),
                "execution_id": row["execution_id"],
                "seq": next_seq,
                "step_id": row["step_id"],
                "step_path": row["step_path"],
                "loop_key": row["loop_key"],
                "type": row["type"],
                "status": str(StepStatus.IN_PROGRESS if resumes else StepStatus.NOT_STARTED),
                "attempt": int(row["attempt"]) + 1,
                "started_at": now if resumes else None,
                "input": row["input"] if resumes else None,
                "suspended": 0,
                "idempotency_key": row["idempotency_key"],
            }
        )
        next_seq += 1
    return again


_STEP_NULLS = (
    "completed_at",
    "failed_at",
    "due_at",
    "wake_at",
    "output",
    "error",
    "state",
    "children",
)


def _event(
    execution_id: str,
    seq: int,
    at: Any,
    kind: str,
    step: Row | None,
    detail: str | None,
) -> Row:
    return {
        "execution_id": execution_id,
        "seq": seq,
        "at": at,
        "kind": kind,
        "step_execution_id": step["id"] if step else None,
        "step_id": step["step_id"] if step else None,
        "attempt": step["attempt"] if step else None,
        "status": step["status"] if step else None,
        "detail": detail,
    }


# -- rerun --------------------------------------------------------------------------------


async def rerun(
    engine: Control,
    execution_id: str,
    from_step: str,
    version: Literal["pinned", "latest"],
    by: str,
) -> str:
    """A new execution that reuses the original's outputs of the steps before ``from_step``
    and runs the rest; returns its id (queued, ``InProgress``, linked by ``rerunOf``)."""
    row = await execution_row(engine.store, execution_id)
    original = await engine.workflow_for_version(row["workflow_version_id"])
    if version == "latest":
        target, stored = await engine.resolve_workflow(row["workflow_name"])
    else:
        pinned = await engine.store.get_workflow_version(row["workflow_version_id"])
        if pinned is None:
            raise NotFoundError(f"workflow version {row['workflow_version_id']} is gone")
        target, stored = original, pinned
    reused = _reusable(original, target, from_step, row["workflow_version"], stored.version)
    status = ExecutionStatus(row["runtime_status"])
    if not status.terminal:
        # Its later steps may still run (or wait for a person): the rerun would do their
        # work a second time beside it.
        raise ConflictError(
            f"execution {execution_id} is {status}: only an ended execution is rerun; "
            "cancel it first, or wait for it to end"
        )
    latest = _latest(await engine.store.get_step_executions(execution_id))
    copies: list[Row] = []
    for step_id in sorted(reused, key=lambda s: _order(original, s)):
        found = latest.get(("", step_id))
        if found is not None and _lost_a_race(original, latest, found):
            copies.append(found)  # the race stays decided: the rerun's join sees it so
            continue
        if found is None or StepStatus(found["status"]) not in REUSABLE:
            state = found["status"] if found else "never ran"
            raise ConflictError(
                f"cannot rerun from '{from_step}': step '{step_id}' runs before it but did not "
                f"complete in execution {execution_id} ({state}); rerun from an earlier step"
            )
        copies.append(found)
    # A reused loop's iterations come with it, so the rerun's own history shows them (the
    # loop's output already holds their results).
    loops = {sid for sid in reused if original.steps[sid].body is not None}
    copies += sorted(
        (
            found
            for (loop_key, path), found in latest.items()
            if loop_key and path.split("/", 1)[0] in loops
        ),
        key=lambda r: (r["seq"], r["id"]),
    )
    now = engine.clock.now()
    new_id = random_uuid()
    step_rows = [
        {**found, "id": str(uuid.uuid4()), "execution_id": new_id, "seq": seq}
        for seq, found in enumerate(copies, start=1)
    ]
    pairs = list(zip(copies, step_rows, strict=True))
    # The rerun's own copies of the reused steps' files (outputs kept as artifacts, saved
    # files), the copied outputs rewritten to them: pruning the original (it ended first)
    # must take nothing the rerun reads or lists (runtime.rerun_artifacts).
    files = await copy_artifacts(engine.artifacts, original, execution_id, from_step, pairs, now)
    try:
        variables = await _variables_after(engine, original, target, reused, latest, pairs)
        exec_row, created = execution_rows(
            target,
            stored,
            trigger=loads(row["trigger"]) or {},
            now=now,
            created_by=by,
            correlation_id=row["correlation_id"],
            lineage=Lineage(rerun_of=execution_id, depth=int(row["depth"] or 0)),
            variables=variables,
            execution_id=new_id,
        )
        codec = Codec()
        origin = {"rerunOf": execution_id, "from": from_step}
        detail = {"workflow": target.name, "version": stored.version, **origin}
        created["detail"] = codec.dumps(detail)
        events = [created, _event(new_id, 2, now, "execution.started", None, None)]
        for found, copy in pairs:
            reuse = codec.dumps({"from": found["id"], "execution": execution_id})
            events.append(_event(new_id, len(events) + 1, now, "step.reused", copy, reuse))
        exec_row.update(
            runtime_status=str(ExecutionStatus.IN_PROGRESS),
            started_at=now,
            event_seq=len(events),
        )
        await engine.store.create_execution(exec_row, events, step_rows, files)  # wakes workers
    except Exception:
        if files:
            await forget_copies(engine.artifacts, engine.store, new_id)
        raise
    return new_id


async def _variables_after(
    engine: Control,
    original: CompiledWorkflow,
    target: CompiledWorkflow,
    reused: set[str],
    latest: dict[tuple[str, str], Row],
    pairs: list[tuple[Row, Row]],
) -> dict[str, Any]:
    """Variables as the reused steps left them: every completed sys.set_variable among them
    or inside their loop bodies, in the order they were applied (each output holds the
    value after its operation, or what an append or merge added: steps.variable_after).
    A custom step's ctx.variables changes are kept with it (``state.variables``)."""
    variables = dict(target.spec.variables)
    copied = {found["id"]: copy for found, copy in pairs}
    changers = [
        found
        for (_, path), found in latest.items()
        if path.split("/", 1)[0] in reused and found["status"] == StepStatus.COMPLETED
    ]
    for found in sorted(changers, key=lambda r: (r["completed_at"], r["seq"])):
        if original.steps[found["step_id"]].step_type.sets_variable:
            out = loads(copied.get(found["id"], found)["output"]) or {}
            if is_reference(out):  # a value over the output budget: the rerun's own copy
                out = await asyncio.to_thread(engine.artifacts.read_output, out, found["step_id"])
            variables[out["name"]] = variable_after(variables.get(out["name"]), out)
            continue
        state = loads(found["state"]) if found["state"] else None
        for name, op, value in changes_made(state):
            variables[name] = apply_variable_op(variables.get(name), op, value, name)
    return variables


def _lost_a_race(
    workflow: CompiledWorkflow, latest: Mapping[tuple[str, str], Row], row: Row
) -> bool:
    """The row's step was cancelled because a ``join: first`` it led into ran first: it
    is in the race of a join of its graph that ran in the same iteration (a join starts
    only once its race is decided, and a decided race cancels every member still
    running; definition.races). A retry leaves it so, and a rerun copies it."""
    if StepStatus(row["status"]) != StepStatus.CANCELLED:
        return False
    step = workflow.steps.get(row["step_id"])
    if step is None:
        return False
    owner = workflow.steps.get(step.scope[-1]) if step.scope else None
    graph = owner.body if owner is not None else workflow.graph
    if graph is None:
        return False
    return any(
        join.spec.join == "first"
        and (row["loop_key"], join.path) in latest
        and step.id in race_of(join, graph.steps)
        for join in graph.steps.values()
    )


def _reusable(
    original: CompiledWorkflow,
    target: CompiledWorkflow,
    from_step: str,
    original_version: int,
    target_version: int,
) -> set[str]:
    step = original.steps.get(from_step)
    if step is None:
        raise NotFoundError(
            f"workflow {original.name} version {original_version} has no step '{from_step}'"
            f"{did_you_mean(from_step, original.steps)}"
        )
    if step.scope:
        raise InputError(
            f"step '{from_step}' runs inside loop '{step.scope[0]}'; rerun from the loop step "
            f"'{step.scope[0]}' instead"
        )
    if from_step not in target.steps:
        raise ConflictError(
            f"step '{from_step}' no longer exists in {target.name} version {target_version}"
        )
    predecessors = {sid: list(s.predecessors) for sid, s in original.graph.steps.items()}
    reused = ancestors(from_step, predecessors)
    problems = []
    # A reused loop's body is reused with it (its results, the variables it set).
    inside = {sid for sid, s in original.steps.items() if reused.intersection(s.scope)}
    for loop in sorted(sid for sid in reused if original.steps[sid].body is not None):
        added = sorted(
            sid for sid, s in target.steps.items() if loop in s.scope and sid not in inside
        )
        if added:
            problems.append(f"loop '{loop}' has new steps in version {target_version}: {added}")
    for sid in sorted(reused | inside):
        then, now = original.steps[sid], target.steps.get(sid)
        if now is None:
            problems.append(f"'{sid}' no longer exists in version {target_version}")
        elif now.type_name != then.type_name or now.scope != then.scope:
            problems.append(
                f"'{sid}' changed from {then.type_name} to {now.type_name} in version "
                f"{target_version}"
            )
    if problems:
        raise ConflictError(
            f"cannot rerun from '{from_step}' on version {target_version}: the steps it would "
            "reuse changed: " + "; ".join(problems) + " (rerun with --version pinned)"
        )
    return reused


def _order(workflow: CompiledWorkflow, step_id: str) -> int:
    return list(workflow.graph.steps).index(step_id)

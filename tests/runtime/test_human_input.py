"""sys.wait_for_input: the execution waits for a person, durably, and checks what they send."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flowledger import Engine, StepRegistry
from flowledger.errors import ConflictError, InputError, InvalidInputError, NotFoundError
from tests.runtime.support import latest, running_worker, wait_for_status, yaml

APPROVAL = yaml(
    """
    name: approval
    variables: {total: 3}
    steps:
      - id: prepare
        type: sys.transform
        input: {value: {count: 3}}
      - id: approve
        type: sys.wait_for_input
        due: 2d
        input:
          prompt: "Send {{ variables.total }} follow-ups?"
          schema: {type: object, properties: {approved: {type: boolean}}, required: [approved]}
          assignee: ops@example.com
      - id: decide
        type: sys.transform
        input: {value: "{{ steps.approve.output.approved }}"}
    output: "{{ steps.decide.output }}"
    """
)


async def test_waiting_shows_the_prompt_and_input_resumes_it(engine: Engine) -> None:
    doc = await engine.run(engine.load_text(APPROVAL))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    waiting = latest(doc, "approve")
    assert waiting["status"] == "InProgress"
    assert waiting["inputData"]["prompt"] == "Send 3 follow-ups?"
    [pending] = doc["pendingInputs"]
    assert pending["stepId"] == "approve"
    assert pending["assignee"] == "ops@example.com"
    assert pending["schema"]["required"] == ["approved"]
    assert waiting["dueAt"] == pending["dueAt"] and pending["dueAt"] is not None

    with pytest.raises(InputError, match=r"data.approved: 'yes' is not of type 'boolean'"):
        await engine.submit_input(doc["id"], "approve", {"approved": "yes"})
    with pytest.raises(InputError, match="'approved' is a required property"):
        await engine.submit_input(doc["id"], "approve", {})
    still = await engine.get_execution(doc["id"])
    assert still["runtimeStatus"] == "AwaitingUserInput"  # refused data changes nothing

    await engine.submit_input(doc["id"], "approve", {"approved": True}, submitted_by="ada")
    done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] is True
    assert latest(done, "approve")["outputData"] == {"approved": True}
    events = await engine.events(doc["id"])
    [received] = [e for e in events if e["kind"] == "step.input_received"]
    assert received["detail"]["submittedBy"] == "ada"
    assert received["detail"]["submittedAt"]
    kinds = [e["kind"] for e in events]
    assert kinds.index("execution.awaiting_input") < kinds.index("execution.resumed")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_input_for_a_step_that_does_not_wait_is_refused(engine: Engine) -> None:
    doc = await engine.run(engine.load_text(APPROVAL))
    with pytest.raises(NotFoundError, match=r"no step 'nope' waiting for input.*approve"):
        await engine.submit_input(doc["id"], "nope", {})
    with pytest.raises(ConflictError, match=r"step 'prepare' .* is not waiting for input"):
        await engine.submit_input(doc["id"], "prepare", {})
    await engine.submit_input(doc["id"], "approve", {"approved": False})
    await engine.settle(doc["id"])
    with pytest.raises(ConflictError, match="is Completed; it waits for no input"):
        await engine.submit_input(doc["id"], "approve", {"approved": True})


async def test_a_step_takes_the_first_answer_and_refuses_the_next(engine: Engine) -> None:
    """While the first answer waits to be applied, a second is refused, not accepted and
    then dropped; of answers sent at once from two processes, exactly one is taken."""
    doc = await engine.run(engine.load_text(APPROVAL))
    await engine.submit_input(doc["id"], "approve", {"approved": True}, submitted_by="ada")
    with pytest.raises(ConflictError, match=r"'approve' .* has been answered already"):
        await engine.submit_input(doc["id"], "approve", {"approved": False}, submitted_by="bo")
    done = await engine.settle(doc["id"])
    assert done["output"] is True
    assert "step.input_ignored" not in [e["kind"] for e in await engine.events(doc["id"])]

    raced = await engine.run(engine.load_text(APPROVAL))
    async with Engine(engine.db_url, registry=engine.registry) as other:
        answers = await asyncio.gather(
            engine.submit_input(raced["id"], "approve", {"approved": True}),
            other.submit_input(raced["id"], "approve", {"approved": False}),
            return_exceptions=True,
        )
    refused = [a for a in answers if isinstance(a, ConflictError)]
    assert len(refused) == 1 and len([a for a in answers if isinstance(a, str)]) == 1, answers
    taken = answers.index(next(a for a in answers if isinstance(a, str)))
    assert (await engine.settle(raced["id"]))["output"] is (taken == 0)


async def test_input_to_an_execution_being_cancelled_is_refused(engine: Engine) -> None:
    """Accepted, it would never be applied: the runner acts on the cancel first."""
    doc = await engine.run(engine.load_text(APPROVAL))
    await engine.cancel(doc["id"], reason="changed our minds")
    with pytest.raises(ConflictError, match="is being cancelled; it takes no input"):
        await engine.submit_input(doc["id"], "approve", {"approved": True})
    # Checked in the input's own write, under the execution's lock: it wrote nothing.
    assert [s["kind"] for s in await engine.store.pending_signals(doc["id"])] == ["cancel"]
    assert (await engine.settle(doc["id"]))["runtimeStatus"] == "Cancelled"


async def test_a_wait_survives_restarts_and_a_worker_resumes_it(
    db_url: str, registry: StepRegistry
) -> None:
    async with Engine(db_url, registry=registry) as first:
        doc = await first.run(first.load_text(APPROVAL))
        assert doc["runtimeStatus"] == "AwaitingUserInput"
    async with Engine(db_url, registry=registry) as second:  # a restart: days may pass here
        waiting = await second.get_execution(doc["id"])
        assert waiting["runtimeStatus"] == "AwaitingUserInput"
        async with running_worker(second):
            await asyncio.sleep(0.2)  # an idle worker leaves a waiting execution alone
            assert (await second.get_execution(doc["id"]))["runtimeStatus"] == "AwaitingUserInput"
            await second.submit_input(doc["id"], "approve", {"approved": True})
            done = await wait_for_status(second, doc["id"], "Completed")
    assert done["output"] is True


@pytest.mark.parametrize("on_timeout", [False, True])
async def test_due_passing_fails_the_step_or_takes_the_default(
    engine: Engine, on_timeout: bool
) -> None:
    fallback = "on_timeout: {default: {approved: false}}" if on_timeout else ""
    text = yaml(
        f"""
        name: quick-approval
        steps:
          - id: approve
            type: sys.wait_for_input
            input:
              prompt: Approve?
              due: 300ms
              {fallback}
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    async with running_worker(engine):
        final = await wait_for_status(engine, doc["id"], "Completed" if on_timeout else "Failed")
    step = latest(final, "approve")
    if on_timeout:
        assert step["outputData"] == {"approved": False}
    else:
        assert "no input arrived before it was due" in step["error"]["message"]
        assert final["error"]["stepId"] == "approve"


async def test_waits_inside_a_loop_are_answered_one_by_one(engine: Engine) -> None:
    text = yaml(
        """
        name: per-item-approval
        steps:
          - id: each
            type: sys.loop
            input: {items: [a, b], concurrency: 2}
            steps:
              - id: ok
                type: sys.wait_for_input
                input: {prompt: "Approve {{ loop.each.item }}?"}
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    assert len(doc["pendingInputs"]) == 2
    with pytest.raises(InputError, match="waits in 2 loop iterations"):
        await engine.submit_input(doc["id"], "ok", "yes")
    for pending in doc["pendingInputs"]:
        await engine.submit_input(doc["id"], pending["stepExecutionId"], pending["prompt"])
    done = await engine.settle(doc["id"])
    assert done["runtimeStatus"] == "Completed"
    results = latest(done, "each")["outputData"]["results"]
    assert [r["ok"] for r in results] == ["Approve a?", "Approve b?"]


async def test_a_bad_schema_is_refused_before_anything_runs(engine: Engine) -> None:
    text = yaml(
        """
        name: bad-schema
        steps:
          - id: ask
            type: sys.wait_for_input
            input: {prompt: "?", schema: {type: nonsense}}
        """
    )
    from flowledger.errors import DefinitionError

    with pytest.raises(DefinitionError, match="not a valid JSON Schema"):
        engine.load_text(text)


async def test_references_are_checked_against_the_schema(engine: Engine) -> None:
    from flowledger.errors import DefinitionError

    text = APPROVAL.replace("steps.approve.output.approved", "steps.approve.output.aproved")
    with pytest.raises(DefinitionError, match="aproved"):
        engine.load_text(text)


def test_due_is_counted_in_days(engine: Engine) -> None:
    assert timedelta(days=2) == engine.load_text(APPROVAL).steps["approve"].spec.due


async def test_an_answer_after_the_due_time_is_refused(engine: Engine) -> None:
    """Whether a late answer won used to depend on whether a worker fired the timeout in
    time; the due time decides now, on the engine's (the database's) clock."""
    text = yaml(
        """
        name: due-soon
        steps:
          - id: ask
            type: sys.wait_for_input
            due: 30s
            input: {prompt: "ok?", on_timeout: {default: {ok: false}}}
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    engine.clock.offset = timedelta(seconds=31)  # the due time has passed, no worker ran
    with pytest.raises(ConflictError, match=r"was due at .*; it takes no input after that"):
        await engine.submit_input(doc["id"], "ask", {"ok": True})
    assert await engine.store.pending_signals(doc["id"]) == []
    engine.clock.offset = timedelta(0)
    await engine.submit_input(doc["id"], "ask", {"ok": True})  # in time: taken


async def test_settling_an_answer_another_process_runs_waits_until_it_is_taken(
    engine: Engine,
) -> None:
    """``executions input`` while a worker holds the execution: the settle watched the
    row, saw AwaitingUserInput (the answer not taken yet) and reported that (exit 3)."""
    doc = await engine.run(engine.load_text(APPROVAL))
    async with Engine(engine.db_url, registry=engine.registry) as worker:
        epoch = await worker.store.acquire_lease(doc["id"], worker.owner, worker.lease)
        assert epoch is not None  # the worker holds it: this engine can only watch
        await engine.submit_input(doc["id"], "approve", {"approved": True})
        settling = asyncio.ensure_future(engine.settle(doc["id"], wait=30))
        await asyncio.sleep(0.3)
        assert not settling.done(), "settled before the answer was taken"
        status, _ = await worker.run_owned(doc["id"])
        assert status == "Completed"
        settled = await asyncio.wait_for(settling, 30)
    assert settled["runtimeStatus"] == "Completed"


async def test_an_execution_ended_between_the_read_and_the_take_is_not_run_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker completed it right after this engine read it InProgress: the take then
    succeeded on a Completed row, and the run failed 'cannot move from Completed to
    Completed'."""
    doc = await engine.run(engine.load_text(APPROVAL))
    await engine.submit_input(doc["id"], "approve", {"approved": True})
    read_before = await engine.store.get_execution(doc["id"])  # as this engine saw it
    assert read_before is not None
    done = await engine.drive(doc["id"])  # "the worker" ends it meanwhile
    assert done["runtimeStatus"] == "Completed"

    async def stale(execution_id: str) -> object:
        return read_before

    monkeypatch.setattr(engine._drives, "_row", stale)
    again = await engine.drive(doc["id"])
    assert again["runtimeStatus"] == "Completed" and again["output"] == done["output"]


async def test_data_json_cannot_hold_is_refused_naming_its_place(engine: Engine) -> None:
    """Tour 23 F5: NaN or an infinity in the data raised the codec's own UnstorableError
    (a ValueError, not a FlowledgerError) from Engine.submit_input, where every face
    refuses it as InvalidInputError naming the field; the step keeps waiting. So is a
    lone surrogate in the text fields of an input or a cancel."""
    doc = await engine.run(engine.load_text(APPROVAL))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidInputError) as refused:
            await engine.submit_input(doc["id"], "approve", {"approved": True, "x": [1, bad]})
        assert str(refused.value) == f"data.x[1]: {bad} is not a JSON number"
        assert refused.value.field_path == ("data", "x", 1)
    with pytest.raises(InputError, match=r"data.who holds a value of type object"):
        await engine.submit_input(doc["id"], "approve", {"approved": True, "who": object()})
    # Text UTF-8 cannot hold: a UnicodeEncodeError from the codec before.
    with pytest.raises(InvalidInputError, match=r"submitted_by: holds a lone surrogate"):
        await engine.submit_input(doc["id"], "approve", {"approved": True}, submitted_by="\ud800")
    with pytest.raises(InvalidInputError, match=r"reason: holds a lone surrogate"):
        await engine.cancel(doc["id"], reason="\ud800")
    await engine.submit_input(doc["id"], "approve", {"approved": True})
    assert (await engine.settle(doc["id"]))["runtimeStatus"] == "Completed"

"""The document ``run`` returns is the execution as stored: a fresh read of it afterwards
(by this engine or another on the same database) gives the same document, also when many
``run`` calls gathered on one engine end together and their documents are read in one go
(storage.coalesce), and whatever the workflow did: retries, failed steps, waits for a
person, loops with variables, sub-workflows."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

import pytest

from flowledger import Engine
from tests.runtime.support import yaml
from tests.runtime.test_sub_workflows import CHILD, PARENT

#: name -> (definition, input, the status each of its runs ends in)
WORKFLOWS: dict[str, tuple[str, dict[str, Any], str]] = {
    "retried": (
        """
        name: retried
        steps:
          - id: f
            type: test.flaky
            input: {fail_times: 1, name: f}
            retry: {max_attempts: 3, backoff: fixed, initial_delay: 5ms, jitter: false}
          - {id: after, type: test.echo, input: {value: "{{ steps.f.output.attempt }}"}}
        output: "{{ steps.after.output }}"
        """,
        {},
        "Completed",
    ),
    "failed": (
        """
        name: failed
        steps:
          - {id: ok, type: test.echo, input: {value: 1}}
          - id: crash
            type: test.crash
            after: [ok]
            input: {value: "{{ steps.ok.output.value }}"}
          - {id: never, type: test.echo, after: [crash], input: {value: 2}}
        """,
        {},
        "Failed",
    ),
    "waiting": (
        """
        name: waiting
        steps:
          - {id: prepare, type: sys.transform, input: {value: {count: 3}}}
          - id: approve
            type: sys.wait_for_input
            due: 2d
            input:
              prompt: "Send {{ steps.prepare.output.count }}?"
              schema: {type: object, properties: {ok: {type: boolean}}}
              assignee: ops@example.com
        """,
        {},
        "AwaitingUserInput",
    ),
    "looped": (
        """
        name: looped
        variables: {total: 0}
        steps:
          - id: each
            type: sys.loop
            input: {items: "{{ input.items }}", concurrency: 2}
            steps:
              - {id: work, type: test.echo, input: {value: "{{ loop.each.item }}"}}
              - id: add
                type: sys.set_variable
                after: [work]
                input: {name: total, op: increment, value: "{{ steps.work.output.value }}"}
        output: "{{ variables.total }}"
        """,
        {"items": [1, 2, 3]},
        "Completed",
    ),
    "parent": (PARENT, {"numbers": [1, 2, 3]}, "Completed"),
}


def spy_batches(engine: Engine) -> list[tuple[str, ...]]:
    """The ids of each document read the store sends (one read: one transaction)."""
    documents = engine.store._documents  # type: ignore[attr-defined]
    read_many = documents._read_many
    batches: list[tuple[str, ...]] = []

    def recorded(ids: Collection[str]) -> Mapping[str, Any]:
        batches.append(tuple(ids))
        return read_many(ids)  # type: ignore[no-any-return]

    documents._read_many = recorded
    return batches


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
async def test_gathered_runs_return_what_a_fresh_read_returns(
    engine: Engine, db_url: str, name: str
) -> None:
    text, arguments, status = WORKFLOWS[name]
    await engine.push(engine.load_text(CHILD))
    workflow = engine.load_text(yaml(text))
    docs = await asyncio.gather(*(engine.run(workflow, arguments) for _ in range(4)))
    assert [d["runtimeStatus"] for d in docs] == [status] * 4, [d["error"] for d in docs]
    assert len({d["id"] for d in docs}) == 4
    for doc in docs:
        assert doc == await engine.get_execution(doc["id"])
    async with Engine(db_url, registry=engine.registry) as other:
        assert docs == [await other.get_execution(d["id"]) for d in docs]


async def test_runs_that_end_together_have_their_documents_read_together(
    engine: Engine,
) -> None:
    batches = spy_batches(engine)
    workflow = engine.load_text(yaml(WORKFLOWS["failed"][0]))
    docs = await asyncio.gather(*(engine.run(workflow) for _ in range(8)))
    ids = {d["id"] for d in docs}
    assert {i for batch in batches for i in batch} == ids
    assert len(batches) < len(ids)  # at least two documents shared a read
    for doc in docs:
        assert doc["runtimeStatus"] == "Failed"
        assert doc == await engine.get_execution(doc["id"])


async def test_documents_asked_for_together_equal_each_read_alone(engine: Engine) -> None:
    workflow = engine.load_text(yaml(WORKFLOWS["looped"][0]))
    ids = [(await engine.run(workflow, {"items": list(range(n))}))["id"] for n in range(1, 5)]
    alone = [await engine.store.read_execution(i) for i in [*ids, "no-such-execution"]]
    batches = spy_batches(engine)
    together = await asyncio.gather(
        *(engine.store.read_execution(i) for i in [*ids, "no-such-execution"])
    )
    assert together == alone
    assert alone[-1] is None
    assert batches == [(*ids, "no-such-execution")]
    for found in together[:-1]:
        assert found is not None
        steps = found[1]
        assert [s["seq"] for s in steps] == sorted(s["seq"] for s in steps)
        assert {s["execution_id"] for s in steps} == {found[0]["id"]}

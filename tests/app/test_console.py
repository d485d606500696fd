"""The expression console (app.console): a value, the exact error, the sandbox, no
secrets, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowledger.app import App, ListEvents, NotFoundError, RunExecution
from flowledger.app.console import EvaluateExpression

SOURCE = """\
name: console
steps:
  - {id: a, type: sys.transform, input: {value: {n: "{{ input.n }}"}}}
"""


async def _execution(app: App, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("console") / "console.yaml"
    path.write_text(SOURCE)
    doc = await app.executions.run(
        RunExecution(workflow=str(path), allow_file=True, input={"n": 2})
    )
    return doc["id"]


async def test_values_errors_and_the_sandbox(
    app: App, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLE_SECRET", "s3cret")
    execution_id = await _execution(app, tmp_path_factory)
    before = await app.executions.events(ListEvents(id=execution_id))

    async def evaluate(text: str) -> dict[str, object]:
        return dict(
            await app.console.evaluate(EvaluateExpression(id=execution_id, expression=text))
        )

    assert (await evaluate("{{ steps.a.output.n * 21 }}"))["value"] == 42
    assert (await evaluate("n = {{ __steps__.a.outputData.n }}"))["value"] == "n = 2"
    missing = await evaluate("{{ steps.a.output.nope }}")
    assert missing["ok"] is False and missing["errorKind"] == "TemplateReferenceError"
    assert "nope" in str(missing["error"])
    escape = await evaluate("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert escape["errorKind"] == "TemplateSecurityError"
    secret = await evaluate("{{ secrets.CONSOLE_SECRET }}")
    assert secret["ok"] is False and "s3cret" not in str(secret)
    syntax = await evaluate("{{ steps.a.output. }}")
    assert syntax["errorKind"] == "TemplateSyntaxError"
    after = await app.executions.events(ListEvents(id=execution_id))
    assert after == before  # read-only


async def test_no_such_execution(app: App) -> None:
    with pytest.raises(NotFoundError):
        await app.console.evaluate(EvaluateExpression(id="missing", expression="{{ 1 }}"))


async def test_an_output_kept_as_an_artifact_is_read_as_a_run_reads_it(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the output budget, a step's output is stored as an artifact; the console
    read the pointer (``{$artifact: ...}``) where the engine reads the value."""
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("FLOWLEDGER_OUTPUT_BUDGET", "1024")
    path = tmp_path / "big.yaml"
    path.write_text(
        "name: big\nsteps:\n"
        "  - {id: blob, type: sys.transform, input: {value: {text: \"{{ 'x' * 5000 }}\"}}}\n"
        "  - id: each\n    type: sys.loop\n    input: {items: [1, 2]}\n    steps:\n"
        "      - {id: inner, type: sys.transform, input: {value: \"{{ 'y' * 3000 }}\"}}\n"
    )
    async with App(db_url) as app:
        doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
        assert "$artifact" in json.dumps(doc["steps"])  # kept as artifacts indeed

        async def value(text: str) -> object:
            found = await app.console.evaluate(EvaluateExpression(id=doc["id"], expression=text))
            assert found["ok"], found
            return found["value"]

        assert await value("{{ steps.blob.output.text | length }}") == 5000
        assert await value("{{ steps.each.output.results[1].inner | length }}") == 3000


async def test_whole_steps_is_the_plain_json_a_step_reads(app: App, tmp_path: Path) -> None:
    """``{{ steps }}`` (the console's own example) gave each step as the Python repr of
    an internal view (``<..._Envelope object at 0x...>``); it is the JSON that the same
    template gives inside a sys.transform step, artifacts and loop outputs included."""
    path = tmp_path / "dump.yaml"
    path.write_text(
        "name: dump\nsteps:\n"
        "  - {id: a, type: sys.transform, input: {value: {n: 1}}}\n"
        "  - id: lp\n    type: sys.loop\n    input: {items: [1, 2]}\n    steps:\n"
        "      - {id: body, type: sys.transform, input: {value: '{{ loop.lp.item }}'}}\n"
        "  - {id: dump, type: sys.transform, input: {value: '{{ steps }}'}}\n"
        "  - {id: later, type: sys.no_action, when: '{{ false }}'}\n"
    )
    doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
    found = await app.console.evaluate(EvaluateExpression(id=doc["id"], expression="{{ steps }}"))
    assert found["ok"], found
    value = found["value"]
    assert "object at 0x" not in json.dumps(value)
    assert json.loads(json.dumps(value)) == value  # plain JSON
    dumped = next(s for s in doc["steps"].values() if s["stepId"] == "dump")["outputData"]
    # A body step is read in a chosen iteration only (none is chosen here); a run at the
    # top level reads it NotStarted.
    assert list(value) == ["a", "lp", "dump", "later"]
    assert list(dumped) == ["body", "a", "lp", "dump", "later"]
    for step_id in ("a", "lp"):  # finished before `dump` ran: the same in both
        # ...but durationMs, which the console reads from the document's millisecond
        # timestamps, and a run from its own clock's (PostgreSQL keeps microseconds).
        mine, run = dict(value[step_id]), dict(dumped[step_id])
        assert abs(mine.pop("durationMs") - run.pop("durationMs")) <= 1
        assert mine == run
    assert value["lp"]["output"]["results"] == [{"body": 1}, {"body": 2}]
    assert value["dump"]["output"] == dumped
    assert value["later"]["nodeName"] == "later" and value["later"]["status"] == "Disabled"


NESTED = """\
name: nested
steps:
  - id: outer
    type: sys.loop
    input: {items: [10, 20, 30]}
    steps:
      - {id: o, type: sys.transform, input: {value: "{{ loop.outer.item }}"}}
      - id: inner
        type: sys.loop
        input: {items: [1, 2]}
        steps:
          - {id: leaf, type: sys.transform, input: {value: "{{ loop.outer.index }}-{{ loop.inner.index }}"}}
  - id: poll
    type: sys.loop
    input: {until: "{{ loop.poll.index == 1 }}", max_iterations: 5}
    steps:
      - {id: p, type: sys.transform, input: {value: "{{ loop.poll.index * 7 }}"}}
"""


async def test_a_loop_body_step_is_read_in_a_chosen_iteration_that_exists(
    app: App, tmp_path: Path
) -> None:
    """With no iteration chosen, ``steps.leaf`` read whichever iteration ran last (none
    in particular); one chosen out of range said "steps.leaf.output is null"."""
    path = tmp_path / "nested.yaml"
    path.write_text(NESTED)
    doc = await app.executions.run(RunExecution(workflow=str(path), allow_file=True))
    assert doc["runtimeStatus"] == "Completed", doc["error"]

    async def evaluate(text: str, **iterations: int) -> dict[str, object]:
        request = EvaluateExpression(id=doc["id"], expression=text, iterations=iterations)
        return dict(await app.console.evaluate(request))

    async def value(text: str, **iterations: int) -> object:
        found = await evaluate(text, **iterations)
        assert found["ok"], found
        return found["value"]

    async def error(text: str, **iterations: int) -> str:
        found = await evaluate(text, **iterations)
        assert not found["ok"] and found["errorKind"] == "TemplateReferenceError", found
        return str(found["error"])

    unchosen = await error("{{ steps.o.output }}")
    assert "steps.o runs inside loop 'outer', so it has an output per iteration" in unchosen
    assert "choose an iteration of 'outer' to read it" in unchosen
    partly = await error("{{ steps.leaf.output }}", outer=1)
    assert "inside loops 'outer', 'inner' (outermost first)" in partly
    assert "choose an iteration of 'inner' to read it" in partly
    assert "choose an iteration of 'outer' and 'inner'" in await error("{{ steps.leaf }}")
    assert await value("{{ steps.o.output }}", outer=1) == 20
    assert await value("{{ steps.leaf.output }}", outer=2, inner=1) == "2-1"
    assert await value("{{ steps.outer.output.count }}") == 3  # outside loops: as before
    assert await value("{{ steps | list }}") == ["outer", "poll"]
    assert await value("{{ steps | sort }}", outer=0) == ["inner", "o", "outer", "poll"]

    beyond = "loop 'outer' has no iteration 3: its iterations are 0 to 2"
    assert f"steps.o: {beyond}" in await error("{{ steps.o.output }}", outer=3)
    assert beyond in await error("{{ steps.leaf.output }}", outer=3, inner=0)
    assert beyond in await error("{{ loop.outer.index }}", outer=3)
    assert "loop 'outer' has no iteration -1" in await error("{{ loop.outer }}", outer=-1)
    assert await value("{{ loop.outer.item }}", outer=2) == 30
    # an until loop: the iterations that ran
    assert await value("{{ steps.p.output }}", poll=1) == 7
    assert "loop 'poll' has no iteration 2: its iterations are 0 to 1" in await error(
        "{{ loop.poll.index }}", poll=2
    )

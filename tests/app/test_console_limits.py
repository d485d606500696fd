"""The expression console keeps a costly expression off the event loop and evaluates one
at a time (tour 20 F4: four viewers' requests held a server for 12 s, /healthz 9.5 s)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from flowledger.app import App, RunExecution
from flowledger.app import console as console_module
from flowledger.app.console import EvaluateExpression, Evaluation
from flowledger.errors import TooManyError

#: The security review's expression: it reaches the operation budget (see
#: tests/templates/test_operation_costs.py), the costliest a viewer can type.
COSTLY = "{{ ((range(10000)|list)*10)" + "|map('string')" * 60 + "|list|length }}"


async def _execution(app: App, tmp_path: Path) -> str:
    path = tmp_path / "console.yaml"
    path.write_text(
        "name: console\nsteps:\n"
        '  - {id: a, type: sys.transform, input: {value: {n: "{{ input.n }}"}}}\n'
    )
    return (
        await app.executions.run(RunExecution(workflow=str(path), allow_file=True, input={"n": 2}))
    )["id"]


async def test_a_costly_expression_leaves_the_event_loop_free(app: App, tmp_path: Path) -> None:
    """The loop ticks on while the expression is evaluated: it was evaluated on the loop,
    which stopped for the whole evaluation (a second or more)."""
    execution_id = await _execution(app, tmp_path)
    gaps: list[float] = []
    running = True

    async def tick() -> None:
        last = time.monotonic()
        while running:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        found = await app.console.evaluate(EvaluateExpression(id=execution_id, expression=COSTLY))
    finally:
        running = False
        await ticker
    assert found["errorKind"] == "TemplateLimitError" and "steps" in str(found["error"])
    # On the loop, the evaluation let the ticker run only at the store reads before it
    # (1-2 ticks seen); off it, the ticker runs all along (hundreds of ticks when idle; 5
    # leaves room for a machine whose cores are starved). A count, not a time.
    assert len(gaps) >= 5, gaps


async def test_one_expression_at_a_time_then_a_clear_refusal(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second expression typed while the first is evaluated waits for it (up to WAIT),
    then is refused with a message saying why: parallel requests no longer share the
    CPU between them and the loop."""
    execution_id = await _execution(app, tmp_path)
    monkeypatch.setattr(console_module, "WAIT", 0.02, raising=False)

    async def evaluate(text: str) -> Evaluation | TooManyError:
        try:
            return await app.console.evaluate(EvaluateExpression(id=execution_id, expression=text))
        except TooManyError as exc:
            return exc

    costly = asyncio.create_task(evaluate(COSTLY))
    turn = getattr(app.console, "_turn", None)  # the console's one turn
    for _ in range(1000):  # until the costly one has it (it reads the execution first)
        if (turn is not None and turn.locked()) or costly.done():
            break
        await asyncio.sleep(0.005)
    second = await evaluate("{{ steps.a.output.n }}")
    first = await costly
    assert not isinstance(first, TooManyError) and first["errorKind"] == "TemplateLimitError"
    assert isinstance(second, TooManyError)
    assert "still evaluating another expression" in str(second) and second.limit == 1
    # Its turn ended with the first: the next one is evaluated.
    later = await app.console.evaluate(
        EvaluateExpression(id=execution_id, expression="{{ steps.a.output.n }}")
    )
    assert later["ok"] and later["value"] == 2

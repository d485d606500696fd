"""Executions.run carries on what a stopped run of the same version, input and correlation
id left, comparing inputs as stored: redacted by the workflow's secrets."""

from __future__ import annotations

import pytest

from flowledger.app import App, RunExecution
from flowledger.codec import loads

# The call never runs (its `when` is false): it only makes the workflow declare TOKEN.
KEYED = """\
name: keyed
steps:
  - id: call
    type: sys.http_request
    when: "{{ input.n < 0 }}"
    input: {url: "http://127.0.0.1:9/x", headers: {Authorization: "{{ secrets.TOKEN }}"}}
  - {id: echo, type: sys.transform, input: {value: "{{ input.n }}"}}
"""
TOKEN = "s3cret-token-value"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_SECRET_TOKEN", TOKEN)


async def _left(app: App, given: dict[str, object], correlation_id: str | None = None) -> str:
    """What a run stopped before its first round leaves: queued, held by no process."""
    workflow = app.engine.load_text(KEYED)
    execution_id = await app.engine.start(
        workflow, given, correlation_id=correlation_id, created_by="cli:run"
    )
    row = await app.engine.store.get_execution(execution_id)
    assert row is not None and TOKEN not in str(row["trigger"])  # stored redacted
    return execution_id


def _run(app: App, given: dict[str, object], **more: object) -> RunExecution:
    return RunExecution.model_validate(
        {"workflow": app.engine.load_text(KEYED), "input": given, "created_by": "cli:run",
         "finish_abandoned": True, **more}
    )  # fmt: skip


async def _ids(app: App) -> set[str]:
    return {d["id"] for d in await app.engine.list_executions()}


async def test_a_run_resumes_what_one_with_the_same_secret_input_left(app: App) -> None:
    given = {"n": 1, "token": TOKEN}
    left = await _left(app, given)

    done = await app.executions.run(_run(app, given))

    assert (done["id"], done["runtimeStatus"]) == (left, "Completed")
    assert await _ids(app) == {left}
    row = await app.engine.store.get_execution(left)
    assert row is not None and TOKEN not in str(row["trigger"])
    assert loads(row["trigger"])["arguments"]["n"] == 1


async def test_another_input_or_correlation_id_or_resume_off_starts_a_new_one(
    app: App,
) -> None:
    for left_input, run_input, correlation, more in [
        ({"n": 1}, {"n": 2}, None, {}),
        ({"n": 1}, {"n": 1}, "batch-7", {}),
        ({"n": 1}, {"n": 1}, None, {"resume_same": False}),
    ]:
        left = await _left(app, left_input, correlation)

        done = await app.executions.run(_run(app, run_input, **more))

        assert done["id"] != left and done["runtimeStatus"] == "Completed"
        left_doc = await app.engine.get_execution(left)
        assert left_doc["runtimeStatus"] == "Completed"  # finished first, as before


async def test_the_same_correlation_id_resumes(app: App) -> None:
    left = await _left(app, {"n": 3}, "batch-7")

    done = await app.executions.run(_run(app, {"n": 3}, correlation_id="batch-7"))

    assert done["id"] == left
    assert await _ids(app) == {left}

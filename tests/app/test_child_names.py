"""One rule for the name a ``sys.sub_workflow`` step gives: the pushed workflow of that
name (or a stored version by number), as a start by name takes it (tour 25 M12).

A name only ever run from a file was refused by ``start`` but accepted by ``validate
--db`` and run by the step as its newest stored version, whatever someone last ran
from a scratch file against the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowledger.app import App, PushWorkflows, RunExecution, StartExecution
from flowledger.app.models import ValidateWorkflow
from flowledger.errors import DefinitionError

KID = "name: kid\nsteps:\n  - {id: k, type: sys.transform, input: {value: 1}}\n"
PARENT = "name: par\nsteps:\n  - {id: s, type: sys.sub_workflow, input: {workflow: kid}}\n"
#: Starts itself, never in fact (its step's when is false): its name is still checked.
AGAIN = (
    "name: again\nsteps:\n"
    "  - {id: s, type: sys.sub_workflow, when: '{{ false }}', input: {workflow: again}}\n"
)
NOT_PUSHED = (
    "workflow 'kid' is not pushed: it was deleted (or only ever run from a file), so it "
    "does not start by name; push it again, or start one of its stored versions by number "
    "(1): version: N in the step's input"
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_a_child_only_ever_run_from_a_file_is_not_found_by_name(
    app: App, tmp_path: Path
) -> None:
    kid, parent = write(tmp_path, "kid.yaml", KID), write(tmp_path, "par.yaml", PARENT)
    ran = await app.executions.run(RunExecution(workflow=kid, allow_file=True))
    assert ran["runtimeStatus"] == "Completed"  # stored, never pushed

    with pytest.raises(DefinitionError) as checked:
        await app.workflows.check(ValidateWorkflow(file=parent, stored=True))
    [problem] = checked.value.problems
    assert (problem.line, problem.step_id, problem.message) == (3, "s", NOT_PUSHED)
    with pytest.raises(DefinitionError, match="workflow 'kid' is not pushed"):
        await app.executions.run(RunExecution(workflow=parent, allow_file=True))
    # start takes it (the workers run it later); its step fails as the check said
    started = await app.executions.start(StartExecution(workflow=parent, allow_file=True))
    await app.engine.drive(started["id"])
    failed = await app.engine.get_execution(started["id"])
    assert failed["runtimeStatus"] == "Failed"
    assert failed["error"] is not None and NOT_PUSHED in failed["error"]["message"]

    await app.workflows.push(PushWorkflows(files=[kid]))
    await app.workflows.check(ValidateWorkflow(file=parent, stored=True))
    done = await app.executions.run(RunExecution(workflow=parent, allow_file=True))
    assert done["runtimeStatus"] == "Completed"


async def test_run_checks_a_step_that_starts_its_own_workflow(app: App, tmp_path: Path) -> None:
    """``validate --db`` lets a workflow start itself (it is pushed when it is); ``run``
    pushes nothing, so there the name must be pushed already."""
    again = write(tmp_path, "again.yaml", AGAIN)
    await app.workflows.check(ValidateWorkflow(file=again, stored=True))
    with pytest.raises(DefinitionError, match="there is no workflow named 'again'"):
        await app.executions.run(RunExecution(workflow=again, allow_file=True))
    await app.workflows.push(PushWorkflows(files=[again]))
    done = await app.executions.run(RunExecution(workflow=again, allow_file=True))
    assert done["runtimeStatus"] == "Completed"

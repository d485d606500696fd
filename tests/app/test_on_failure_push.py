"""``on_failure`` names a pushed workflow: a push (or a ``run``'s check, or ``validate
--db``) refuses a name that is not pushed, located as a ``sys.sub_workflow``'s is; a
handler pushed in the same push is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowledger.app import App, ListWorkflows, PushWorkflows, ValidateWorkflow
from flowledger.errors import DefinitionError
from tests.app.test_workflows import write

ORDERS = """\
name: orders
on_failure: {workflow: alert}
steps:
  - {id: stop, type: sys.fail}
"""
ALERT = """\
name: alert
steps:
  - {id: note, type: sys.transform, input: {value: "{{ input.executionId }}"}}
"""


async def test_a_push_refuses_a_handler_that_is_not_pushed(app: App, tmp_path: Path) -> None:
    orders = write(tmp_path, "orders.yaml", ORDERS)
    with pytest.raises(DefinitionError) as caught:
        await app.workflows.push(PushWorkflows(files=[orders]))
    [problem] = caught.value.problems
    said = problem.format()
    assert said.startswith(f"{orders}:2:24: on_failure.workflow: "), said
    assert "no workflow named 'alert'" in said
    assert await app.workflows.list(ListWorkflows()) == []


async def test_a_handler_pushed_with_it_or_before_it_is_found(app: App, tmp_path: Path) -> None:
    orders = write(tmp_path, "orders.yaml", ORDERS)
    alert = write(tmp_path, "alert.yaml", ALERT)
    pushed = await app.workflows.push(PushWorkflows(files=[orders, alert]))
    assert [p["name"] for p in pushed] == ["orders", "alert"]
    # Pushed again alone: the handler is stored now.
    await app.workflows.push(PushWorkflows(files=[orders]))


async def test_validate_with_the_database_and_run_check_the_handler(
    app: App, tmp_path: Path
) -> None:
    orders = write(tmp_path, "orders.yaml", ORDERS)
    with pytest.raises(DefinitionError, match="no workflow named 'alert'"):
        await app.workflows.check(ValidateWorkflow(file=orders, stored=True))
    with pytest.raises(DefinitionError, match="no workflow named 'alert'"):
        await app.workflows.check_children(app.workflows.validate(ValidateWorkflow(file=orders)))
    await app.workflows.check(ValidateWorkflow(file=orders))  # no database: not looked up

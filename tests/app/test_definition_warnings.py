"""A webhook trigger on a workflow without ``input_schema`` takes any body, and each bad
one starts an execution that fails later: ``validate`` and a push say so, as a warning
(tour 25 L4)."""

from __future__ import annotations

from pathlib import Path

from flowledger.app import App, PushWorkflows
from flowledger.app.models import ValidateWorkflow

OPEN = """\
name: hooked
triggers:
  - {type: schedule, cron: "0 * * * *"}
  - {type: webhook, path: tour-in, auth: none}
steps:
  - {id: s, type: sys.transform, input: {value: "{{ input.email }}"}}
"""
CHECKED = OPEN.replace(
    "triggers:", "input_schema: {type: object, properties: {email: {type: string}}}\ntriggers:"
)
WARNING = (
    "triggers[1]: the webhook on path 'tour-in' takes any body, unchecked: the workflow "
    "has no input_schema, so a body it cannot use starts an execution that fails when it "
    "reads the input; declare input_schema to refuse such a body with 422"
)


async def test_a_webhook_without_input_schema_is_warned_of(app: App, tmp_path: Path) -> None:
    (tmp_path / "open.yaml").write_text(OPEN)
    (tmp_path / "checked.yaml").write_text(CHECKED)
    validated = await app.workflows.check(ValidateWorkflow(file=str(tmp_path / "open.yaml")))
    assert validated.warnings == (WARNING,)
    [pushed] = await app.workflows.push(PushWorkflows(files=[str(tmp_path / "open.yaml")]))
    assert pushed["warnings"] == [WARNING]

    fine = await app.workflows.check(ValidateWorkflow(file=str(tmp_path / "checked.yaml")))
    assert fine.warnings == ()
    [again] = await app.workflows.push(PushWorkflows(files=[str(tmp_path / "checked.yaml")]))
    assert again["warnings"] == []

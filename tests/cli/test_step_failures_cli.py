"""What `flowledger run` prints when a custom step fails: one line on stderr per failed
attempt, the traceback left to `executions logs` (tour 25 L3), and on the step.failed line
why the step is not tried again (tour 25 M10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.e2e

PLUGIN = """\
from pydantic import BaseModel
from flowledger import StepContext, StepError, step_type


class In(BaseModel):
    code: str | None = None


@step_type("tour.charge")
async def charge(data: In, ctx: StepContext) -> dict:
    if data.code is None:
        return {"x": {}["x"]}
    raise StepError("gateway said no", code=data.code)
"""


def _files(tmp_path: Path, retry: str, given: str) -> tuple[str, str]:
    plugin = tmp_path / "tour_plugin.py"
    plugin.write_text(PLUGIN)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: charge\nsteps:\n  - id: b\n    type: tour.charge\n"
        f"    input: {given}\n    retry: {{{retry}, backoff: fixed, initial_delay: 10ms}}\n"
    )
    return str(plugin), str(flow)


def test_a_raising_step_prints_one_line_per_attempt_and_its_traceback_stays_in_the_logs(
    cli: Cli, tmp_path: Path
) -> None:
    plugin, flow = _files(tmp_path, "max_attempts: 2", "{}")
    result = cli("run", flow, "--plugin", plugin)
    assert result.returncode == 1, result.stderr
    execution_id = result.stdout.split()[1]
    assert "Traceback" not in result.stderr and "runner.py" not in result.stderr, result.stderr
    raised = [line for line in result.stderr.splitlines() if "raised" in line]
    expected = f"step b raised KeyError: 'x' (traceback: flowledger executions logs {execution_id} --step b)"
    assert len(raised) == 2 and all(line.endswith(expected) for line in raised), result.stderr
    assert "step.failed" in result.stdout and "(not retried: last of 2 attempts)" in result.stdout
    logs = cli("executions", "logs", execution_id, "--step", "b")
    assert logs.stdout.count("Traceback (most recent call last):") == 2, logs.stdout
    assert 'return {"x": {}["x"]}' in logs.stdout


@pytest.mark.parametrize(
    ("retry", "reason"),
    [
        ("codes: [Gateway503]", "(not retried: code CardDeclined is not in retry.codes)"),
        (
            "except_codes: [CardDeclined]",
            "(not retried: code CardDeclined is in retry.except_codes)",
        ),
    ],
)
def test_the_failed_line_says_why_the_step_is_not_retried(
    cli: Cli, tmp_path: Path, retry: str, reason: str
) -> None:
    plugin, flow = _files(tmp_path, retry, "{code: CardDeclined}")
    result = cli("run", flow, "--plugin", plugin)
    assert result.returncode == 1, result.stderr
    [failed] = [line for line in result.stdout.splitlines() if "step.failed" in line]
    assert failed.endswith(f"b (attempt 1): gateway said no {reason}"), failed
    execution_id = result.stdout.split()[1]
    events = cli("executions", "events", execution_id)
    assert reason in events.stdout, events.stdout

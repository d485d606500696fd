"""Every graph rule of SPEC §1 and every step type of this issue, through the real CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.e2e

CASES: dict[str, tuple[str, dict[str, Any], int, dict[str, str], Any]] = {
    # name: (definition, input, exit code, {step: final status}, output)
    "list order": (
        """
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
          - {id: b, type: sys.transform, input: {value: "{{ steps.a.output + 1 }}"}}
        output: "{{ steps.b.output }}"
        """,
        {},
        0,
        {"a": "Completed", "b": "Completed"},
        2,
    ),
    "parallel after and join": (
        """
        steps:
          - {id: a, type: sys.transform, after: [], input: {value: 1}}
          - {id: b, type: sys.transform, after: [], input: {value: 2}}
          - {id: join, type: sys.transform, after: [a, b], input: {value: "{{ steps.a.output + steps.b.output }}"}}
        output: "{{ steps.join.output }}"
        """,
        {},
        0,
        {"a": "Completed", "b": "Completed", "join": "Completed"},
        3,
    ),
    "when and disabled propagation": (
        """
        steps:
          - {id: a, type: sys.transform, when: "{{ input.go }}", input: {value: 1}}
          - {id: b, type: sys.transform, input: {value: 2}}
        input_schema: {type: object, properties: {go: {type: boolean}}}
        """,
        {"go": False},
        0,
        {"a": "Disabled", "b": "Disabled"},
        None,
    ),
    "then/else with a join": (
        """
        steps:
          - {id: c, type: sys.condition, input: {expression: "{{ input.n > 1 }}"}, then: [big], else: [small]}
          - {id: big, type: sys.transform, input: {value: big}}
          - {id: small, type: sys.transform, input: {value: small}}
          - {id: join, type: sys.transform, after: [big, small], input: {value: "{{ steps.big.output or steps.small.output }}"}}
        input_schema: {type: object, properties: {n: {type: integer}}}
        output: "{{ steps.join.output }}"
        """,
        {"n": 5},
        0,
        {"c": "Completed", "big": "Completed", "small": "Disabled", "join": "Completed"},
        "big",
    ),
    "continue_on_error": (
        """
        steps:
          - {id: a, type: sys.fail, continue_on_error: true, input: {message: tolerated}}
          - {id: b, type: sys.transform, input: {value: "{{ steps.a.error.message }}"}}
        output: "{{ steps.b.output }}"
        """,
        {},
        0,
        {"a": "Failed", "b": "Completed"},
        "tolerated",
    ),
    "a failure fails the execution": (
        """
        steps:
          - {id: wait, type: sys.delay, after: [], input: {duration: 30s}}
          - {id: boom, type: sys.fail, after: [], input: {message: boom}}
        """,
        {},
        1,
        {"wait": "Cancelled", "boom": "Failed"},
        None,
    ),
    "loop with set_variable": (
        """
        variables: {total: 0}
        steps:
          - id: each
            type: sys.loop
            input: {items: [1, 2, 3], concurrency: 2}
            steps:
              - {id: add, type: sys.set_variable, input: {name: total, op: increment, value: "{{ loop.each.item }}"}}
        output: "{{ variables.total }}"
        """,
        {},
        0,
        {"each": "Completed"},
        6,
    ),
    "delay": (
        """
        steps:
          - {id: nap, type: sys.delay, input: {duration: 100ms}}
        output: "{{ steps.nap.output.resumedAt is string }}"
        """,
        {},
        0,
        {"nap": "Completed"},
        True,
    ),
    "no_action": (
        """
        steps:
          - {id: idle, type: sys.no_action, input: {reason: quiet day}}
        """,
        {},
        0,
        {"idle": "Completed"},
        None,
    ),
    "retry then fail": (
        """
        steps:
          - id: call
            type: sys.http_request
            input: {url: "http://127.0.0.1:9/closed", timeout: 2s}
            retry: {max_attempts: 2, initial_delay: 10ms}
        """,
        {},
        1,
        {"call": "Failed"},
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rule(cli: Cli, tmp_path: Path, case: str) -> None:
    body, arguments, code, expected, output = CASES[case]
    path = tmp_path / "wf.yaml"
    path.write_text("name: rule\n" + textwrap.dedent(body))
    result = cli("run", str(path), "--json", "--input", json.dumps(arguments))
    assert result.returncode == code, result.stderr
    doc = json.loads(result.stdout)
    latest: dict[str, tuple[int, str]] = {}
    for step in doc["steps"].values():
        if not step["loop"]:
            seen = latest.get(step["stepId"])
            if seen is None or step["attempt"] > seen[0]:
                latest[step["stepId"]] = (step["attempt"], step["status"])
    assert {k: v[1] for k, v in latest.items()} == expected
    if output is not None:
        assert doc["output"] == output
    if case == "no_action":
        assert doc["runtimeStatus"] == "CompletedWithNoActionTaken"
    if case == "retry then fail":
        assert latest["call"][0] == 2
        plain = cli("executions", "show", doc["id"])
        assert "step 'call' (attempt 2)" in plain.stdout

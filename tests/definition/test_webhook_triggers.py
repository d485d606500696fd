"""Webhook triggers: an unsigned one must say ``auth: none`` (a located problem)."""

from __future__ import annotations

import pytest

from flowledger.definition.triggers import WebhookTrigger
from tests.definition.test_compiler import compile_yaml, problems

STEPS = """\
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
"""


def test_a_webhook_without_a_secret_is_refused_unless_it_says_auth_none() -> None:
    text = """\
name: hooked
triggers:
  - {type: schedule, cron: "0 9 * * *"}
  - {type: webhook, path: leads}
"""
    found = problems(text + STEPS)
    assert len(found) == 1
    assert found[0].startswith("wf.yaml:4:")  # file and line of the trigger
    assert "no secret_env, so anyone could start the workflow" in found[0]
    assert "auth: none" in found[0]


def test_auth_none_and_a_secret_contradict() -> None:
    text = "name: hooked\ntriggers:\n  - {type: webhook, path: leads, auth: none, secret_env: S}\n"
    found = problems(text + STEPS)
    assert len(found) == 1 and "drop one of them" in found[0]


@pytest.mark.parametrize(
    "trigger",
    [
        "{type: webhook, path: leads, auth: none}",
        "{type: webhook, path: leads, secret_env: LEADS_SECRET}",
    ],
)
def test_signed_or_explicitly_open_webhooks_compile(trigger: str) -> None:
    workflow = compile_yaml(f"name: hooked\ntriggers:\n  - {trigger}\n{STEPS}")
    (compiled,) = workflow.triggers
    assert isinstance(compiled.spec, WebhookTrigger) and compiled.spec.path == "leads"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            "path: /leads, auth: none",
            'triggers[0].path: must start with an ASCII letter or digit, not "/" (write "leads")',
        ),
        (
            "path: _leads, auth: none",
            'triggers[0].path: must start with an ASCII letter or digit, not "_"',
        ),
        (
            'path: "new lead", auth: none',
            "triggers[0].path: may hold only ASCII letters and digits, '_', '.', '/' and '-' "
            '(no spaces); " " is not one',
        ),
        (
            "path: leadé, auth: none",
            "triggers[0].path: may hold only ASCII letters and digits, '_', '.', '/' and '-' "
            '(no spaces); "é" is not one',
        ),
        (
            "path: leads, secret_env: LEAD-SECRET",
            "triggers[0].secret_env: is the name of an environment variable: it may hold "
            "only ASCII letters, digits and '_'; \"-\" is not one",
        ),
        (
            "path: leads, secret_env: 1SECRET",
            "triggers[0].secret_env: is the name of an environment variable, which does not "
            'start with a digit; "1SECRET" does',
        ),
    ],
)
def test_a_webhook_s_path_and_secret_env_are_refused_in_words(fields: str, expected: str) -> None:
    """The refusal showed the raw pattern (^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$)."""
    (found,) = problems(f"name: hooked\ntriggers:\n  - {{type: webhook, {fields}}}\n{STEPS}")
    assert found.split(": ", 1)[1] == expected

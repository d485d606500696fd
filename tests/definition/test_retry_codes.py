"""``retry.codes``: the failure codes a step is tried again on, checked when the
definition is read (a located message for an empty list or a malformed code)."""

from __future__ import annotations

import textwrap

import pytest

from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.models import RetryPolicy
from flowledger.errors import DefinitionError
from flowledger.steps.registry import StepRegistry
from flowledger.templates import TemplateEngine


def _load(retry: str) -> None:
    text = textwrap.dedent(
        f"""\
        name: t
        steps:
          - id: call
            type: sys.http_request
            input: {{url: "http://example.com"}}
            retry: {retry}
        """
    )
    load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine(), "flow.yaml")


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        (
            "{max_attempts: 3, codes: []}",
            "flow.yaml:6:37: step 'call': retry.codes: must have at least 1 item, not 0",
        ),
        (
            '{codes: [timeout, "rate limited"]}',
            "flow.yaml:6:30: step 'call': retry.codes[1]: \"rate limited\" is not an error "
            "code: a letter, then up to 63 letters, digits, '_', '.' or '-'",
        ),
        ("{codes: timeout}", "retry.codes: must be a list"),
        ("{except_codes: []}", "retry.except_codes: must have at least 1 item, not 0"),
        ('{except_codes: ["card declined"]}', 'retry.except_codes[0]: "card declined" is not'),
        ("{backoff: quadratic}", "must be one of fixed, linear, exponential"),
    ],
)
def test_malformed_codes_are_refused(retry: str, message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        _load(retry)
    assert message in str(caught.value)


def test_codes_are_read() -> None:
    _load("{max_attempts: 3, codes: [timeout, http.5xx, RateLimited]}")


@pytest.mark.parametrize(
    ("codes", "code", "retried"),
    [
        (None, "anything", True),
        (["timeout"], "timeout", True),
        (["http"], "http.5xx", True),
        (["http.5xx"], "http.4xx", False),
        (["http"], "https", False),
        (["http.5xx"], "http", False),
    ],
)
def test_which_codes_a_policy_retries(codes: list[str] | None, code: str, retried: bool) -> None:
    assert RetryPolicy(codes=codes).retries(code) is retried


@pytest.mark.parametrize(
    ("codes", "except_codes", "code", "refusal"),
    [
        (None, ["CardDeclined"], "CardDeclined", "code CardDeclined is in retry.except_codes"),
        (None, ["card"], "card.declined", "code card.declined is in retry.except_codes"),
        (None, ["CardDeclined"], "Gateway503", None),
        (None, ["card"], "cards", None),  # a whole dotted part, as in codes
        (["http"], ["http.4xx"], "http.5xx", None),
        (["http"], ["http.4xx"], "http.4xx", "code http.4xx is in retry.except_codes"),
        (["http"], ["http.4xx"], "timeout", "code timeout is not in retry.codes"),
    ],
)
def test_except_codes_are_never_retried(
    codes: list[str] | None, except_codes: list[str], code: str, refusal: str | None
) -> None:
    policy = RetryPolicy(codes=codes, except_codes=except_codes)
    assert policy.refusal(code) == refusal
    assert policy.retries(code) is (refusal is None)


def test_except_codes_and_linear_backoff_are_read() -> None:
    _load("{max_attempts: 3, backoff: linear, except_codes: [CardDeclined, http.4xx]}")

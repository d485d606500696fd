"""A webhook request's credentials are stored hidden, in the trigger every viewer reads
and the workflow runs with (tour 20 F6: ?code=, ?sig=, ?key=, ?jwt=, ?hmac=, ?pwd= and
X-Shopify-Hmac-Sha256 were stored in clear); names that only look alike stay readable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from flowledger.app import App, PushWorkflows, WorkflowText
from flowledger.app.hooks import ReceiveHook

OPEN = """\
name: open
triggers:
  - {type: webhook, path: open, auth: none}
steps:
  - {id: seen, type: sys.transform, input: {value: "{{ trigger.queryParams }}"}}
output: "{{ steps.seen.output }}"
"""

#: The review's request: Azure Functions' ?code=, an Azure SAS ?sig=, a Google ?key=, ...
QUERY = {"key": "K1", "sig": "S1", "code": "OAUTHCODE", "jwt": "J1", "hmac": "HM", "pwd": "PW"}
HIDDEN_HEADERS = {
    "X-Shopify-Hmac-Sha256": "zz-shopify",
    "X-Functions-Key": "fk-1",
    "Ocp-Apim-Subscription-Key": "apim-1",
    "Cookie": "sid=c-1",
}
#: Named like a credential's part, but none: they stay as sent.
KEPT_QUERY = {"country_code": "FR", "keyword": "shoes", "ref": "main"}
KEPT_HEADERS = {"Idempotency-Key": "delivery-7", "X-Request-Id": "r-1"}


@pytest.fixture
async def open_app(db_url: str) -> AsyncIterator[App]:
    async with App(db_url) as app:
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=OPEN, file="o.yaml")]))
        yield app


async def test_credential_parameters_and_headers_are_stored_hidden(open_app: App) -> None:
    receipt = await open_app.hooks.receive(
        ReceiveHook(
            path="open",
            headers={**HIDDEN_HEADERS, **KEPT_HEADERS},
            query={**QUERY, **KEPT_QUERY},
            body=b"",
        )
    )
    doc = await open_app.engine.drive(receipt["executionId"])
    trigger = doc["trigger"]
    assert trigger["queryParams"] == {**dict.fromkeys(QUERY, "***"), **KEPT_QUERY}
    for name in HIDDEN_HEADERS:
        assert trigger["headers"][name.lower()] == "***", name
    assert trigger["headers"]["idempotency-key"] == "delivery-7"
    assert trigger["headers"]["x-request-id"] == "r-1"
    # The workflow reads the trigger as stored: no step can show the values either.
    assert doc["output"] == trigger["queryParams"]
    text = json.dumps(doc)
    for secret in [*QUERY.values(), *HIDDEN_HEADERS.values()]:
        assert secret not in text, secret

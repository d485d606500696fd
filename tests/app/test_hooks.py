"""Webhook triggers in (app.hooks): signatures, replays, rotation, limits, routing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from flowledger.app import App, ListExecutions, PushWorkflows, WorkflowText
from flowledger.app.hooks import ReceiveHook
from flowledger.app.models import SwitchWorkflow
from flowledger.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
)

SIGNED = """\
name: signed
triggers:
  - {type: webhook, path: leads/new, secret_env: TEST_HOOK_SECRET}
steps:
  - {id: echo, type: sys.transform, input: {value: "{{ input.name }} via {{ trigger.type }}"}}
output: {said: "{{ steps.echo.output }}", q: "{{ trigger.queryParams.source }}"}
"""
OPEN = """\
name: open
triggers:
  - {type: webhook, path: open, auth: none}
steps:
  - {id: echo, type: sys.transform, input: {value: "{{ trigger.body }}"}}
output: "{{ steps.echo.output }}"
"""
TYPED = """\
name: typed
input_schema:
  type: object
  properties: {n: {type: integer}, unit: {type: string, default: kg}}
  required: [n]
triggers:
  - {type: webhook, path: typed, auth: none}
steps:
  - {id: echo, type: sys.transform, input: {value: "{{ input.n }} {{ input.unit }}"}}
output: "{{ steps.echo.output }}"
"""


def new_secret(seed: bytes) -> str:
    return "whsec_" + base64.b64encode(seed * (32 // len(seed))).decode()


SECRET, OLD_SECRET = new_secret(b"new-secret-8"[:8]), new_secret(b"old-secr")


def signed(
    body: bytes,
    *secrets: str,
    msg_id: str = "msg_1",
    at: datetime | None = None,
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signatures = " ".join(Webhook(s).sign(msg_id, at, body.decode()) for s in secrets)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


@pytest.fixture
async def hooks_app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("FLOWLEDGER_HOOK_BODY_LIMIT", "2KiB")
    async with App(db_url) as app:
        texts = [WorkflowText(text=t, file=f"{n}.yaml") for n, t in
                 (("signed", SIGNED), ("open", OPEN), ("typed", TYPED))]  # fmt: skip
        await app.workflows.push(PushWorkflows(texts=texts))
        yield app


async def count(app: App) -> int:
    return len((await app.executions.list(ListExecutions(limit=100))).items)


async def test_a_signed_request_starts_the_workflow_with_the_trigger(hooks_app: App) -> None:
    body = json.dumps({"name": "Ada"}).encode()
    receipt = await hooks_app.hooks.receive(
        ReceiveHook(path="leads/new", headers=signed(body, SECRET), body=body,
                    query={"source": "crm"})
    )  # fmt: skip
    assert receipt["workflow"] == "signed" and receipt["duplicate"] is False
    row = await hooks_app.engine.store.get_execution(receipt["executionId"])
    assert row is not None and row["runtime_status"] == "NotStarted"
    assert row["created_by"] == "webhook:leads/new"
    trigger = json.loads(row["trigger"])
    assert trigger["body"] == {"name": "Ada"} and trigger["queryParams"] == {"source": "crm"}
    assert trigger["headers"]["webhook-id"] == "msg_1"
    done = await hooks_app.engine.drive(receipt["executionId"])
    assert done["output"] == {"said": "Ada via webhook", "q": "crm"}


async def test_a_replayed_webhook_id_returns_the_same_execution(hooks_app: App) -> None:
    body = b'{"name": "Ada"}'
    first = await hooks_app.hooks.receive(
        ReceiveHook(path="leads/new", headers=signed(body, SECRET), body=body)
    )
    again = await hooks_app.hooks.receive(
        ReceiveHook(path="leads/new", headers=signed(body, SECRET), body=body)
    )
    assert again["executionId"] == first["executionId"] and again["duplicate"] is True
    other = await hooks_app.hooks.receive(
        ReceiveHook(path="leads/new", headers=signed(body, SECRET, msg_id="msg_2"), body=body)
    )
    assert other["executionId"] != first["executionId"]
    assert await count(hooks_app) == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: {**h, "webhook-signature": "v1,"},  # svix CVE-2024-21491
        lambda h: {**h, "webhook-signature": h["webhook-signature"][:-8]},  # truncated MAC
        lambda h: {**h, "webhook-signature": "v2," + h["webhook-signature"][3:]},
        lambda h: {**h, "webhook-signature": "v1"},
        lambda h: {**h, "webhook-signature": "v1,!!notbase64"},
        lambda h: {**h, "webhook-id": "msg_other"},
        lambda h: {k: v for k, v in h.items() if k != "webhook-signature"},
    ],
)
async def test_a_bad_signature_is_refused_and_starts_nothing(
    hooks_app: App, tamper: object
) -> None:
    body = b'{"name": "Mallory"}'
    headers = tamper(signed(body, SECRET))  # type: ignore[operator]
    with pytest.raises(AuthenticationError):
        await hooks_app.hooks.receive(ReceiveHook(path="leads/new", headers=headers, body=body))
    assert await count(hooks_app) == 0


async def test_a_reserialized_body_or_another_secret_does_not_verify(hooks_app: App) -> None:
    body = b'{"name": "Ada"}'
    headers = signed(body, SECRET)
    with pytest.raises(AuthenticationError, match="no signature matches"):
        await hooks_app.hooks.receive(
            ReceiveHook(path="leads/new", headers=headers, body=b'{"name":"Ada"}')
        )
    with pytest.raises(AuthenticationError, match="no signature matches"):
        await hooks_app.hooks.receive(
            ReceiveHook(path="leads/new", headers=signed(body, OLD_SECRET), body=body)
        )
    assert await count(hooks_app) == 0


@pytest.mark.parametrize("off", [timedelta(seconds=-301), timedelta(seconds=301)])
async def test_a_stale_or_future_timestamp_is_refused(hooks_app: App, off: timedelta) -> None:
    body = b'{"name": "Ada"}'
    headers = signed(body, SECRET, at=datetime.now(UTC) + off)
    with pytest.raises(AuthenticationError, match="more than 5 minutes"):
        await hooks_app.hooks.receive(ReceiveHook(path="leads/new", headers=headers, body=body))
    assert await count(hooks_app) == 0


async def test_rotation_several_signatures_and_several_secrets(
    hooks_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"name": "Ada"}'
    # The sender signs with its old and new secret; this side knows the new one only.
    both = signed(body, OLD_SECRET, SECRET, msg_id="msg_rot1")
    receipt = await hooks_app.hooks.receive(ReceiveHook(path="leads/new", headers=both, body=body))
    assert receipt["duplicate"] is False
    # This side accepts both secrets while senders move over: the old one verifies too.
    monkeypatch.setenv("TEST_HOOK_SECRET", f"{SECRET} {OLD_SECRET}")
    old = signed(body, OLD_SECRET, msg_id="msg_rot2")
    assert (await hooks_app.hooks.receive(
        ReceiveHook(path="leads/new", headers=old, body=body)))["duplicate"] is False  # fmt: skip
    assert await count(hooks_app) == 2


async def test_an_unset_secret_refuses_every_request(
    hooks_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_HOOK_SECRET")
    body = b"{}"
    with pytest.raises(UnavailableError, match="no secret"):
        await hooks_app.hooks.receive(
            ReceiveHook(path="leads/new", headers=signed(body, SECRET), body=body)
        )


async def test_open_hooks_dedupe_on_the_idempotency_key(hooks_app: App) -> None:
    plain = {"Content-Type": "text/plain"}
    a = await hooks_app.hooks.receive(ReceiveHook(path="open", headers=plain, body=b"hi"))
    b = await hooks_app.hooks.receive(ReceiveHook(path="open", headers=plain, body=b"hi"))
    assert a["executionId"] != b["executionId"]  # no key: every request starts one
    keyed = {**plain, "Idempotency-Key": "order-42"}
    c = await hooks_app.hooks.receive(ReceiveHook(path="open", headers=keyed, body=b"hi"))
    d = await hooks_app.hooks.receive(ReceiveHook(path="open", headers=keyed, body=b"hi"))
    assert c["executionId"] == d["executionId"] and d["duplicate"] is True
    # The key again with another body: a sender's bug or a replay, refused, not dropped.
    with pytest.raises(ConflictError, match="with another body"):
        await hooks_app.hooks.receive(ReceiveHook(path="open", headers=keyed, body=b"bye"))
    assert await count(hooks_app) == 3
    done = await hooks_app.engine.drive(c["executionId"])
    assert done["output"] == "hi"


async def test_a_key_sent_to_one_hook_does_not_stand_for_another_s(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One workflow with an open hook and a signed one: an unsigned request that sends
    the signed sender's next webhook-id as its Idempotency-Key must not swallow that
    signed delivery (it was answered "duplicate" with the forged execution)."""
    both = """\
name: both
triggers:
  - {type: webhook, path: both/open, auth: none}
  - {type: webhook, path: both/signed, secret_env: TEST_HOOK_SECRET}
steps:
  - {id: echo, type: sys.transform, input: {value: "{{ trigger.body }}"}}
"""
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    async with App(db_url) as app:
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=both)]))
        forged_body = b'{"amount": 0}'
        forged = await app.hooks.receive(
            ReceiveHook(
                path="both/open",
                headers={"Content-Type": "application/json", "Idempotency-Key": "msg_X"},
                body=forged_body,
            )
        )
        body = b'{"amount": 100}'
        genuine = await app.hooks.receive(
            ReceiveHook(path="both/signed", headers=signed(body, SECRET, msg_id="msg_X"), body=body)
        )
        assert genuine["duplicate"] is False
        assert genuine["executionId"] != forged["executionId"]
        again = await app.hooks.receive(
            ReceiveHook(path="both/signed", headers=signed(body, SECRET, msg_id="msg_X"), body=body)
        )
        assert again == genuine | {"duplicate": True}


async def test_limits_and_bad_bodies(hooks_app: App) -> None:
    json_type = {"Content-Type": "application/json"}
    with pytest.raises(TooLargeError, match="2 KiB"):
        await hooks_app.hooks.receive(ReceiveHook(path="open", body=b"x" * 2049))
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        await hooks_app.hooks.receive(ReceiveHook(path="open", headers=json_type, body=b"{"))
    with pytest.raises(InvalidInputError, match="UTF-8"):
        await hooks_app.hooks.receive(ReceiveHook(path="open", body=b"\xff\xfe"))
    with pytest.raises(InvalidInputError, match="at most 200"):
        await hooks_app.hooks.receive(
            ReceiveHook(path="open", headers={"Idempotency-Key": "k" * 201}, body=b"")
        )
    with pytest.raises(InputError, match="input_schema"):
        await hooks_app.hooks.receive(ReceiveHook(path="typed", headers=json_type, body=b"{}"))
    ok = await hooks_app.hooks.receive(
        ReceiveHook(path="typed", headers=json_type, body=b'{"n": 3}')
    )
    done = await hooks_app.engine.drive(ok["executionId"])
    assert (done["runtimeStatus"], done["output"]) == ("Completed", "3 kg")  # the default
    assert await count(hooks_app) == 1


async def test_unknown_paths_and_unpushed_workflows_are_not_found(hooks_app: App) -> None:
    with pytest.raises(NotFoundError, match="no pushed workflow"):
        await hooks_app.hooks.receive(ReceiveHook(path="nowhere", body=b""))
    # Loaded and run from a file, never pushed: its webhook path is not live.
    workflow = hooks_app.engine.load_text(OPEN.replace("open", "adhoc"), "adhoc.yaml")
    await hooks_app.engine.register(workflow)
    with pytest.raises(NotFoundError):
        await hooks_app.hooks.receive(ReceiveHook(path="adhoc", body=b""))


async def test_a_webhook_path_names_one_workflow(hooks_app: App) -> None:
    """A second workflow on a path in use is refused at its push (and at its enable),
    so the senders of the first keep reaching it."""
    other = OPEN.replace("name: open", "name: other")
    with pytest.raises(ConflictError, match="workflow 'open' already has a webhook trigger"):
        await hooks_app.workflows.push(PushWorkflows(texts=[WorkflowText(text=other)]))
    two = [WorkflowText(text=t, file=f"{n}.yaml") for n, t in
           (("x", other.replace("path: open", "path: same")),
            ("y", other.replace("name: other", "name: third").replace("path: open", "path: same")))]  # fmt: skip
    with pytest.raises(ConflictError, match="path 'same'"):
        await hooks_app.workflows.push(PushWorkflows(texts=two))
    assert [p.version["name"] for p in await hooks_app.engine.store.pushed_workflows()] == [
        "open",
        "signed",
        "typed",
    ]  # nothing of either push was stored
    hook = ReceiveHook(path="open", headers={}, body=b"{}")
    assert (await hooks_app.hooks.receive(hook))["workflow"] == "open"
    # A new version of the same workflow keeps its path; a disabled one gives it up.
    await hooks_app.workflows.push(PushWorkflows(texts=[WorkflowText(text=OPEN + "# v2\n")]))
    await hooks_app.workflows.switch(SwitchWorkflow(name="open", enabled=False))
    await hooks_app.workflows.push(PushWorkflows(texts=[WorkflowText(text=other)]))
    assert (await hooks_app.hooks.receive(hook))["workflow"] == "other"
    with pytest.raises(ConflictError, match="workflow 'other' already has"):
        await hooks_app.workflows.switch(SwitchWorkflow(name="open", enabled=True))
    await hooks_app.workflows.switch(SwitchWorkflow(name="typed", enabled=False))
    # Told to anyone who calls: that it is off, not whose it is nor how to enable it.
    # A 503 that asks for the delivery again (a 404 made senders give up on it for good).
    with pytest.raises(UnavailableError) as disabled:
        await hooks_app.hooks.receive(ReceiveHook(path="typed", headers={}, body=b"{}"))
    assert str(disabled.value) == (
        "the webhook trigger on path 'typed' is disabled for now; deliver again later"
    )
    assert disabled.value.retry_after == 60


async def test_credentials_in_a_hook_request_are_stored_hidden(hooks_app: App) -> None:
    """Only Authorization, Cookie and Proxy-Authorization were left out: X-Gitlab-Token,
    X-Api-Key and ?access_token= were stored in clear for every viewer to read."""
    headers = {
        "X-Gitlab-Token": "glpat-abc",
        "X-Api-Key": "k-123",
        "Authorization": "Bearer zzz",
        "X-Gitlab-Event": "Push Hook",
    }
    query = {"access_token": "qqq", "ref": "main"}
    got = await hooks_app.hooks.receive(
        ReceiveHook(path="open", headers=headers, query=query, body=b"")
    )
    doc = await hooks_app.engine.get_execution(got["executionId"])
    trigger = doc["trigger"]
    assert trigger["headers"]["x-gitlab-token"] == "***"
    assert trigger["headers"]["x-api-key"] == "***"
    assert trigger["headers"]["authorization"] == "***"
    assert trigger["headers"]["x-gitlab-event"] == "Push Hook"
    assert trigger["queryParams"] == {"access_token": "***", "ref": "main"}
    assert "glpat-abc" not in json.dumps(doc) and "qqq" not in json.dumps(doc)

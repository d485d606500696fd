"""The execution page in-process (httpx over ASGI, no browser), where an on-call engineer
finds why an execution failed (tour 22b): an attempt's step logs and traceback, the
child a sub-workflow failed in, a data store tree that stays small, a cancel that asks
first and reads as one, short ids."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from flowledger.api import ApiSettings, create_api
from flowledger.app import (
    App,
    CreateToken,
    PushWorkflows,
    StartExecution,
    WorkflowText,
)
from flowledger.web import mount_web
from tests.web.test_pages import ASK, ROLES, Web


class Numbered(BaseModel):
    n: int
    token: str = ""


class Said(BaseModel):
    n: int


def registry() -> StepRegistry:
    found = StepRegistry.with_builtins()

    @step_type("test.boom", secret_fields=["token"])
    async def boom(data: Numbered, ctx: StepContext) -> Said:
        ctx.logger.warning("about to fail on %d with %s", data.n, data.token)
        ctx.logger.info("second line")
        return {}["missing_key"]  # type: ignore[no-any-return]

    @step_type("test.picky")
    async def picky(data: Numbered, ctx: StepContext) -> Said:
        if data.n == 2:
            raise StepError("two is refused", retryable=False)
        return Said(n=data.n)

    found.register(boom)
    found.register(picky)
    return found


@pytest.fixture
async def web(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Web]:
    monkeypatch.setenv("FLOWLEDGER_SECRET_WEB_TOKEN", "tok-5ecret-value")
    engine = Engine(db_url, registry=registry())
    async with engine, App(engine=engine) as app:
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASK)]))
        tokens = {
            role: (await app.tokens.create(CreateToken(name=role, role=role)))["token"]
            for role in ROLES
        }
        api = create_api(app, ApiSettings())
        mount_web(api)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as http:
            yield Web(app, http, tokens)


async def test_a_short_id_goes_to_its_execution_and_one_several_start_lists_them(
    web: Web,
) -> None:
    """Tour 22b L7: ``/executions/abd61694`` was a 404 (the page shows 8 characters, the
    CLI takes prefixes), and the 404 page offered to sign in to someone signed in."""
    ids = [
        (await web.app.executions.start(StartExecution(workflow="ask", input={"n": i})))["id"]
        for i in range(17)  # two share their first hexadecimal digit
    ]
    http = await web.sign_in("viewer")
    short = await http.get(f"/executions/{ids[0][:8]}?step=approve")
    assert short.status_code == 303
    assert short.headers["location"] == f"/executions/{ids[0]}?step=approve"
    shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
    several = await http.get(f"/executions/{shared}")
    assert several.status_code == 300
    listed = re.findall(r'<li><a href="/executions/([^"]+)">', several.text)
    assert sorted(listed) == sorted(i for i in ids if i.startswith(shared))
    missing = await http.get("/executions/zzzz")
    assert missing.status_code == 404 and "execution zzzz does not exist" in missing.text
    assert 'href="/signin"' not in missing.text and "Sign out" in missing.text

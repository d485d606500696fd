"""A database that can take no more writes (SQLite's SQLITE_FULL, as on a full disk):
writes and the listings that need a cursor secret first are refused with 503
storage_unavailable in JSON, in the driver's words, while reads go on."""

from __future__ import annotations

from pathlib import Path

import httpx

from flowledger.api import ApiSettings, create_api
from flowledger.app import App, CreateToken, PushWorkflows, WorkflowText
from tests.full_disk import fill, full

HELLO = """
name: hello
input_schema: {type: object, properties: {text: {type: string}}}
steps: [{id: only, type: sys.no_action}]
"""


async def test_a_new_database_on_a_full_disk_answers_storage_unavailable(tmp_path: Path) -> None:
    """The first listing stores the cursor secret (a write): it once failed with a
    plain-text 500 and a traceback."""
    url = f"sqlite:///{tmp_path / 'full.db'}"
    async with App(url) as app:
        await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=HELLO)]))
        token = (await app.tokens.create(CreateToken(name="t", role="admin")))["token"]
    pages = fill(tmp_path / "full.db")
    with full(pages):
        async with App(url) as app:
            api = create_api(app, ApiSettings())
            transport = httpx.ASGITransport(app=api)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t", headers=headers
            ) as http:
                for path in ("/api/v1/executions", "/api/v1/job-runs", "/api/v1/subscriptions"):
                    answer = await http.get(path)
                    assert answer.status_code == 503, (path, answer.text)
                    assert answer.json()["error"]["code"] == "storage_unavailable"
                    said = answer.json()["error"]["message"]
                    # It answered; it said "the database does not answer" of a full disk.
                    assert "the database answers but cannot take writes: database or" in said
                big = {
                    "text": "x" * 20_000
                }  # a row that needs new pages (the tables' own have room)
                started = await http.post("/api/v1/workflows/hello/executions", json={"input": big})
                assert started.status_code == 503, started.text
                said = started.json()["error"]["message"]
                assert said.endswith("database or disk is full"), said  # not SQLAlchemy's text
                assert (await http.get("/api/v1/workflows/hello")).status_code == 200
                # Reads answer, but a node whose writes fail is not ready (it said "ready").
                ready = await http.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert "cannot take writes" in ready.json()["error"]["message"]

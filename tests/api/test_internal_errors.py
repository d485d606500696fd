"""A bug's exception in a route is answered in the API's error shape (500
``internal_error``, its traceback in the log), and the server goes on serving the same
connection: Starlette answered a plain-text "Internal Server Error" and uvicorn then
dropped the connection, so the client's next request on it was reset (the API fuzz's
500 of POST /api/v1/job-runs showed both)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from flowledger.api import ApiSettings, create_api
from flowledger.api.hosting import server
from flowledger.app import App, CreateToken


async def test_a_bug_is_a_json_500_and_the_connection_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with App(f"sqlite:///{tmp_path / 'bug.db'}") as app:
        token = (await app.tokens.create(CreateToken(name="t", role="operator")))["token"]

        async def broken(*_: object, **__: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(app.job_runs, "page", broken)
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        running = server(
            create_api(app, ApiSettings()), "127.0.0.1", 0, level="warning",
            on_listening=listening.set_result,
        )  # fmt: skip
        serving = asyncio.create_task(running.serve())
        try:
            port = await asyncio.wait_for(listening, 30)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
            ) as http:
                with caplog.at_level(logging.ERROR, logger="flowledger.api.edge"):
                    failed = await http.get("/api/v1/job-runs")
                assert failed.status_code == 500
                assert failed.headers["content-type"] == "application/json"
                said = failed.json()["error"]
                assert said["code"] == "internal_error"
                assert said["message"] == (
                    "the server failed to answer GET /api/v1/job-runs (RuntimeError); this is "
                    "a flowledger bug: its log has the details"
                )
                (record,) = [r for r in caplog.records if r.name == "flowledger.api.edge"]
                assert record.exc_info and "a bug" in str(record.exc_info[1])
                # The client goes on, on the connection it has or a new one it was told to.
                assert (await http.get("/api/v1/executions")).status_code == 200
        finally:
            running.should_exit = True
            await serving

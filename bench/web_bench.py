"""The web UI's server time (issue 12 point 6), in-process over ASGI (no network, no
browser): the executions list with many executions in the database, and the execution
page of a 1,000-item loop, of a 300-step workflow and of chains of 1,500 and 3,000
steps (no loop), with each page's size.

    .venv/bin/python bench/web_bench.py                       # 100,000 executions, SQLite
    .venv/bin/python bench/web_bench.py --executions 20000

Targets: the list's first page ≤ 300 ms; each execution page ≤ 1 s (server side; the
browser then lays the graph out, see tests/web). Seeding starts executions through the
application (``App.executions.start``, nothing runs them), so it takes a while.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from flowledger.api import ApiSettings, create_api
from flowledger.app import (
    App,
    CreateToken,
    PushWorkflows,
    RunExecution,
    StartExecution,
    WorkflowText,
)
from flowledger.web import mount_web

HELLO = "name: hello\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
LOOP = """\
name: big-loop
steps:
  - id: lp
    type: sys.loop
    input: {items: "{{ range(1000) | list }}", concurrency: 50}
    steps:
      - {id: inner, type: sys.transform, input: {value: "{{ loop.lp.item * 2 }}"}}
"""
WIDE = "name: wide\nsteps:\n" + "".join(
    f"  - {{id: s{i}, type: sys.transform, input: {{value: {i}}}}}\n" for i in range(300)
)


def chain(name: str, steps: int) -> str:
    return f"name: {name}\nsteps:\n" + "".join(
        f"  - {{id: s{i}, type: sys.transform, input: {{value: {i}}}}}\n" for i in range(steps)
    )


ROUNDS = 15


async def seed(app: App, count: int) -> None:
    started = time.perf_counter()
    for done in range(0, count, 500):
        await asyncio.gather(
            *(
                app.executions.start(StartExecution(workflow="hello"))
                for _ in range(min(500, count - done))
            )
        )
    print(f"seeded {count:,} executions in {time.perf_counter() - started:.0f} s")


async def timed(http: httpx.AsyncClient, path: str) -> str:
    times = []
    size = 0
    for _ in range(ROUNDS):
        began = time.perf_counter()
        answer = await http.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
        size = len(answer.content)
    p95 = sorted(times)[int(len(times) * 0.95) - 1]
    return f"median {statistics.median(times):.0f} ms, p95 {p95:.0f} ms, {size / 1000:,.0f} kB"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=100_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        async with App(f"sqlite:///{Path(folder) / 'web.db'}") as app:
            chains = (chain("chain1500", 1500), chain("chain3000", 3000))
            texts = [WorkflowText(text=t) for t in (HELLO, LOOP, WIDE, *chains)]
            await app.workflows.push(PushWorkflows(texts=texts))
            token = (await app.tokens.create(CreateToken(name="b", role="viewer")))["token"]
            loop = await app.executions.run(RunExecution(workflow="big-loop"))
            wide = await app.executions.run(RunExecution(workflow="wide"))
            c1500 = await app.executions.run(RunExecution(workflow="chain1500"))
            c3000 = await app.executions.run(RunExecution(workflow="chain3000"))
            await seed(app, options.executions)
            api = create_api(app, ApiSettings())
            mount_web(api)
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:
                await http.post("/signin", data={"token": token})
                rows = [
                    ("list, first page", "/executions"),
                    ("list, one workflow", "/executions?workflow=hello"),
                    ("list, one status", "/executions?status=Completed"),
                    ("execution, 1,000-item loop", f"/executions/{loop['id']}"),
                    ("execution, 300 steps", f"/executions/{wide['id']}"),
                    ("execution, 1,500-step chain", f"/executions/{c1500['id']}"),
                    ("execution, 3,000-step chain", f"/executions/{c3000['id']}"),
                ]
                for label, path in rows:
                    print(f"{label:32} {await timed(http, path)}")


if __name__ == "__main__":
    asyncio.run(main())

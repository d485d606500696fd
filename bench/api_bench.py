"""The HTTP face under load (issue 13 point 12), against a real ``flowledger serve``.

    .venv/bin/python bench/api_bench.py                 # SQLite, then a throwaway PostgreSQL
    .venv/bin/python bench/api_bench.py --pg URL        # PostgreSQL at URL (a fresh database)
    .venv/bin/python bench/api_bench.py --no-pg         # SQLite only
    .venv/bin/python bench/api_bench.py --client wrk    # throughputs loaded by wrk (C)
    .venv/bin/python bench/api_bench.py --gets-only     # only bare vs GET /executions/{id}

Per backend, over loopback only, bounded loops:

- ``GET /api/v1/executions/{id}`` requests/s with :data:`CLIENTS` concurrent httpx
  clients, each request for one of :data:`READS` finished executions of three steps at
  random, beside a bare FastAPI route returning a constant on the same uvicorn set-up
  (``bare``: same ``uvicorn.Config`` options as ``serve`` under this bench, log level
  ``warning`` too, in a subprocess): target ≥ 50%;
- ``POST /api/v1/workflows/{name}/executions`` starts/s over HTTP (``serve
  --no-workers``: the starts only, nothing runs them meanwhile) beside the engine's
  in-process start rate (``App.executions.start`` from :data:`CLIENTS` tasks on the
  same kind of database): target ≥ 50%; beside it, the rate a start would reach if it
  cost the bare route's request plus an in-process start and nothing more;
- webhook: a signed ``POST /hooks/{path}``, one at a time; its 202 time, and the time
  until the first step's ``step.started`` event (its ``at``: the server's clock, this
  machine's);
- long-poll wake-up: ``GET /executions/{id}?wait=30`` on an execution that ends after a
  200 ms ``sys.delay``; latency = answer received minus its ``completedAt``.

The client runs in one process; its own cost bounds what it can measure (it is the same
for the bare route, which is why the ratio, not the absolute figure, is the target).
With ``--client wrk`` (Debian's ``wrk``), the three throughputs are loaded by wrk
instead of httpx: an httpx request costs this 2-core machine about as much as a start,
so beside a 1 ms in-process start the Python client caps "HTTP starts" near 40%
whatever the server does; wrk's cost is a small fraction of it.
Throughputs are measured in :data:`ROUNDS` alternating rounds (bare, GET, HTTP starts,
in-process starts, again), each client warmed up by one untimed request; latencies
skip the first request (start-up, not steady state).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from flowledger.app import (
    App,
    CreateToken,
    PushWorkflows,
    RunExecution,
    StartExecution,
    WorkflowText,
)

CLIENTS = 50
REQUESTS = 4000  # per throughput measurement
STARTS = 2000
ROUNDS = 3  # throughputs are measured in alternating rounds (see measure)
HOOKS = 100
POLLS = 100
FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")
SECRET = "whsec_" + base64.b64encode(b"bench-hook-secret-0123456789abcd").decode()
HELLO = "name: hello\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
HOOKED = """\
name: hooked
triggers:
  - {type: webhook, path: bench, secret_env: BENCH_HOOK_SECRET}
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
"""
#: What the GETs read: executions of three steps each, run to their end before the load.
READ = """\
name: reads
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
  - {id: b, type: sys.transform, input: {value: "{{ steps.a.output }}"}, after: [a]}
  - {id: c, type: sys.transform, input: {value: "{{ steps.b.output }}"}, after: [b]}
"""
#: How many of them: each GET reads one picked at random, so no answer is one id's alone.
READS = 200
NAP = "name: nap\nsteps:\n  - {id: a, type: sys.delay, input: {duration: 200ms}}\n"
BARE = """
import sys, uvicorn
from fastapi import FastAPI
api = FastAPI()
@api.get("/constant")
async def constant() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(api, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            lifespan="off", server_header=False, timeout_graceful_shutdown=30,
            loop="asyncio",  # serve runs uvicorn in its own asyncio loop, never uvloop
            http="httptools")  # as serve does
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def prepare(db: str) -> str:
    async with App(db) as app:
        texts = [WorkflowText(text=t) for t in (HELLO, HOOKED, NAP, READ)]
        await app.workflows.push(PushWorkflows(texts=texts))
        made = await app.tokens.create(
            CreateToken(name=f"bench-{uuid.uuid4().hex[:6]}", role="admin")
        )
        return str(made["token"])


async def finished(db: str) -> list[str]:
    """The paths of :data:`READS` executions of ``reads``, run to their end here."""
    async with App(db) as app:
        done = [await app.executions.run(RunExecution(workflow="reads")) for _ in range(READS)]
    assert all(doc["runtimeStatus"] == "Completed" for doc in done), done[0]
    return [f"/api/v1/executions/{doc['id']}" for doc in done]


@contextmanager
def process(argv: list[str], url: str, env: dict[str, str]) -> Iterator[str]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(log.read().decode(errors="replace")) from None
                time.sleep(0.05)
        yield url.rsplit("/", 1)[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def serve(db: str, *args: str) -> AbstractContextManager[str]:
    port = free_port()
    env = {**os.environ, "FLOWLEDGER_DB": db, "BENCH_HOOK_SECRET": SECRET,
           "FLOWLEDGER_LOG_LEVEL": "WARNING"}  # fmt: skip
    argv = [FLOWLEDGER, "serve", "--port", str(port), "--db", db, *args]
    return process(argv, f"http://127.0.0.1:{port}/healthz", env)


async def hammer(
    base: str, token: str, method: str, paths: Sequence[str], total: int, body: object = None
) -> float:
    """Requests/s of ``total`` requests from :data:`CLIENTS` concurrent clients, each
    connected and warmed up by one untimed request first (steady state, not start-up);
    each request to one of ``paths`` at random."""
    headers = {"Authorization": f"Bearer {token}"}
    left = total
    ready = asyncio.Barrier(CLIENTS + 1)
    go = asyncio.Event()

    async def client() -> None:
        nonlocal left
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            answer = await http.request(method, paths[0], json=body)
            assert answer.status_code < 300, answer.text
            await ready.wait()
            await go.wait()
            while left > 0:
                left -= 1
                answer = await http.request(method, random.choice(paths), json=body)
                assert answer.status_code < 300, answer.text

    clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    await ready.wait()
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*clients)
    return total / (time.perf_counter() - started)


WRK_SECONDS = 4  # per wrk throughput measurement
WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
paths = {{{paths}}}
request = function()
  return wrk.format(nil, paths[math.random(#paths)])
end
"""


async def wrk(
    base: str, token: str, method: str, paths: Sequence[str], total: int, body: object = None
) -> float:
    """Requests/s by wrk, :data:`CLIENTS` connections on 2 threads for
    :data:`WRK_SECONDS` (``total`` is unused: wrk runs for a time, not a count); each
    request to one of ``paths`` at random (wrk's Lua ``request``)."""
    del total
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        payload = json.dumps(body) if body is not None else ""
        script.write(
            WRK_SCRIPT.format(
                method=method,
                body=payload.replace('"', '\\"'),
                token=token,
                paths=", ".join(json.dumps(p) for p in paths),
            )
        )
    argv = ["wrk", "-t2", f"-c{CLIENTS}", f"-d{WRK_SECONDS}s", "-s", script.name, base + paths[0]]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
    out = (await proc.communicate())[0].decode()
    os.unlink(script.name)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert bad is None, out
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found is not None, out
    return float(found.group(1))


async def in_process_starts(db: str, total: int) -> float:
    async with App(db) as app:
        await app.executions.start(StartExecution(workflow="hello"))  # warm
        left = total

        async def starter() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await app.executions.start(StartExecution(workflow="hello"))

        started = time.perf_counter()
        await asyncio.gather(*(starter() for _ in range(CLIENTS)))
        return total / (time.perf_counter() - started)


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def hooks(base: str, token: str) -> tuple[list[float], list[float]]:
    """One signed webhook at a time (each waited for: latency, not a backlog)."""
    accepted, first_step = [], []
    signer = Webhook(SECRET)
    async with httpx.AsyncClient(base_url=base, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as http:  # fmt: skip
        for n in range(HOOKS + 1):  # the first warms the server up: not counted
            body = json.dumps({"n": 1})
            msg = f"msg_{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            headers = {"Content-Type": "application/json", "webhook-id": msg,
                       "webhook-timestamp": str(int(now.timestamp())),
                       "webhook-signature": signer.sign(msg, now, body)}  # fmt: skip
            sent = time.time()
            answer = await http.post("/hooks/bench", content=body, headers=headers)
            took = time.time() - sent
            assert answer.status_code == 202, answer.text
            execution_id = answer.json()["executionId"]
            await http.get(f"/api/v1/executions/{execution_id}", params={"wait": 30})
            events = (await http.get(f"/api/v1/executions/{execution_id}/events")).json()
            items = events["items"] if isinstance(events, dict) else events
            began = next(e for e in items if e["kind"] == "step.started")
            if n:
                accepted.append(took)
                first_step.append(max(0.0, at(began["at"]) - sent))
    return accepted, first_step


async def long_polls(base: str, token: str) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as http:  # fmt: skip
        for n in range(POLLS + 1):  # the first warms the server up: not counted
            doc = (await http.post("/api/v1/workflows/nap/executions", json={})).json()
            answer = await http.get(f"/api/v1/executions/{doc['id']}", params={"wait": 30})
            got = time.time()
            done = answer.json()
            assert done["runtimeStatus"] == "Completed", done
            if n:
                out.append(max(0.0, got - at(done["completedAt"])))
    return out


async def measure(
    name: str, db: str, fresh: str, quiet: str, load: str = "httpx", gets_only: bool = False
) -> list[tuple[str, str]]:
    """``db`` takes the HTTP load, ``fresh`` the in-process starts, ``quiet`` the
    latencies (a server with workers on ``db`` would first run the thousands of starts
    queued there, and webhook executions would wait behind them)."""
    run = wrk if load == "wrk" else hammer
    token = await prepare(db)
    reads = await finished(db)
    await prepare(fresh)
    quiet_token = await prepare(quiet)
    bare = gets = starts = engine = 0.0
    with bare_server() as plain, serve(db, "--no-workers") as base:
        # Alternating rounds, summed: the machine's other load drifts, and a ratio of two
        # measurements minutes apart would measure the drift.
        for _ in range(ROUNDS):
            bare += await run(plain, "-", "GET", ["/constant"], REQUESTS // ROUNDS)
            gets += await run(base, token, "GET", reads, REQUESTS // ROUNDS)
            if gets_only:
                continue
            starts += await run(
                base, token, "POST", ["/api/v1/workflows/hello/executions"], STARTS // ROUNDS, {}
            )
            engine += await in_process_starts(fresh, STARTS // ROUNDS)
    bare, gets, starts, engine = (x / ROUNDS for x in (bare, gets, starts, engine))
    rows = [(f"{name}: bare FastAPI GET /constant", f"{bare:,.0f} req/s")]
    rows.append(
        (f"{name}: GET /executions/{{id}}", f"{gets:,.0f} req/s = {gets / bare:.0%} of bare")
    )
    if gets_only:
        return rows
    ratio = f"{starts / engine:.0%} of in-process {engine:,.0f}/s"
    rows.append(
        (f"{name}: POST /workflows/{{name}}/executions", f"{starts:,.0f} starts/s = {ratio}")
    )
    # What a start over HTTP could reach if it cost the bare route's request plus an
    # in-process start and nothing else (both measured above, per request).
    ceiling = 1 / (1 / bare + 1 / engine)
    rows.append(
        (
            f"{name}:   ... against bare route + start",
            f"{ceiling:,.0f}/s: HTTP starts reach {starts / ceiling:.0%} of it",
        )
    )
    # The client's own full collections walked everything the rounds left in this process:
    # one took 72 ms during the webhooks (gc.callbacks), and a latency it lands on is the
    # client's pause, not the server's. As `serve` does with its start-up heap.
    gc.collect()
    gc.freeze()
    with serve(quiet) as base:
        accepted, first = await hooks(base, quiet_token)
        polls = await long_polls(base, quiet_token)
    rows.append(
        (
            f"{name}: webhook 202",
            f"p50 {pct(accepted, 0.5):.1f} ms, p99 {pct(accepted, 0.99):.1f} ms",
        )
    )
    rows.append(
        (
            f"{name}: webhook → step.started",
            f"p50 {pct(first, 0.5):.1f} ms, p99 {pct(first, 0.99):.1f} ms",
        )
    )
    rows.append(
        (
            f"{name}: long-poll wake-up",
            f"p50 {pct(polls, 0.5):.1f} ms, p99 {pct(polls, 0.99):.1f} ms",
        )
    )
    return rows


def bare_server() -> AbstractContextManager[str]:
    """A bare FastAPI route returning a constant, on the uvicorn set-up of ``serve``."""
    port = free_port()
    argv = [sys.executable, "-c", BARE, str(port)]
    return process(argv, f"http://127.0.0.1:{port}/constant", dict(os.environ))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL URL (default: a throwaway cluster)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument(
        "--client",
        choices=("httpx", "wrk"),
        default="httpx",
        help="what loads the throughput measurements (wrk: Debian's wrk, much cheaper)",
    )
    parser.add_argument(
        "--gets-only", action="store_true", help="only the bare route and GET /executions/{id}"
    )
    args = parser.parse_args()
    if args.client == "wrk" and shutil.which("wrk") is None:
        parser.error("--client wrk needs wrk on PATH (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp())
    dbs = (f"sqlite:///{folder}/{n}.db" for n in ("a", "b", "c"))
    rows = await measure("sqlite", *dbs, load=args.client, gets_only=args.gets_only)
    if not args.no_pg:
        cluster = None
        if args.pg:
            urls: tuple[str, ...] = (args.pg, args.pg, args.pg)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.pg import Cluster, find_bindir  # the throwaway cluster the tests use

            bindir = find_bindir()
            assert bindir is not None, "PostgreSQL's server programs are not installed"
            cluster = Cluster(bindir, durable=True)
            cluster.start()
            urls = tuple(cluster.url(cluster.create_database()) for _ in range(3))
        try:
            rows += await measure("postgresql", *urls, load=args.client, gets_only=args.gets_only)
        finally:
            if cluster is not None:
                cluster.stop()
    width = max(len(k) for k, _ in rows)
    print(f"{CLIENTS} concurrent clients ({args.client}); loopback; {os.cpu_count()} CPUs")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    asyncio.run(main())

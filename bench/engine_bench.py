"""Engine throughput and overhead on SQLite with durable commits (issue: engine core).

Prints, per scenario: wall time, steps per second, engine time per step, peak RSS.
Each scenario runs in a fresh subprocess so its peak RSS is its own.

    .venv/bin/python bench/engine_bench.py            # every scenario
    .venv/bin/python bench/engine_bench.py chain_io   # one of them
    .venv/bin/python bench/engine_bench.py --gathered 5 [--pg]  # many executions, one engine

``--gathered``: 200 executions x 3 steps on one engine, in interleaved rounds on fresh
databases (SQLite file, or with ``--pg`` a throwaway cluster with fsync on), three ways
that let the engine batch across executions: ``asyncio.gather`` of ``start`` then ``drive``
per execution, ``gather`` of ``run``, and the in-process worker (the starts, then a
``Worker`` of concurrency 50; bench/compare.py's W3); and two ways that do not, for what a
short execution costs when they arrive one at a time: the worker already running while the
starts arrive one after another (a service's shape), and ``run`` calls one after another.
Prints wall time and process CPU (every thread) per step: the CPU moves less with the load.
Each measure starts from a full collection (``_Span``), so none pays for the garbage of the
ones before it. What a long-running process pays for its own on top, full collections of
the runners' objects, this bench does not show: 40-60 us a step in each of the three shapes
when ten measures of one shape run in a row without it (SQLite, quiet machine).

Two step kinds are measured, because the engine treats them differently:
- ``sys.transform`` is pure: it runs inside the round that records it (one commit
  covers a whole run of ready pure steps);
- ``bench.noop`` is a custom async step with (pretend) side effects: its start is
  committed before its handler runs, its completion in the next round's commit.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from floor import sqlite_commit_seconds
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, Worker, WorkerOptions, step_type
from flowledger.definition.compiled import CompiledWorkflow


class NoopInput(BaseModel):
    value: Any = None


@step_type("bench.noop")
async def noop(data: NoopInput, ctx: StepContext) -> dict[str, Any]:
    return {"value": data.value}


def chain(n: int, kind: str) -> str:
    steps = [f"  - {{id: s{i}, type: {kind}, input: {{value: {i}}}}}" for i in range(n)]
    return "name: chain\nsteps:\n" + "\n".join(steps) + "\n"


def fan_out(n: int, kind: str) -> str:
    steps = ["  - {id: start, type: sys.transform, input: {value: 0}}"]
    steps += [
        f"  - {{id: b{i}, type: {kind}, after: [start], input: {{value: {i}}}}}" for i in range(n)
    ]
    joined = ", ".join(f"b{i}" for i in range(n))
    steps.append(f"  - {{id: join, type: sys.transform, after: [{joined}], input: {{value: 1}}}}")
    return "name: fan\nsteps:\n" + "\n".join(steps) + "\n"


THREE_STEPS = """
name: small
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
  - {id: b, type: bench.noop, input: {value: "{{ steps.a.output + 1 }}"}}
  - {id: c, type: sys.transform, input: {value: "{{ steps.b.output.value }}"}}
"""


def loop(n: int, concurrency: int, kind: str) -> str:
    return f"""
name: loop
variables: {{total: 0}}
steps:
  - id: each
    type: sys.loop
    input: {{items: "{{{{ range({n}) | list }}}}", concurrency: {concurrency}}}
    steps:
      - {{id: work, type: {kind}, input: {{value: "{{{{ loop.each.item }}}}"}}}}
"""


CHILD = THREE_STEPS.replace("name: small", "name: child")
PARENT = """
name: parent
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: child, items: "{{ range(200) | list }}", concurrency: 20}
"""
#: Extra scenarios that need more than one definition: name -> description.
SPECIAL = {
    "executions_1k": "1,000 executions of a 3-step workflow",
    "children_200": "200 child executions (3 steps each), concurrency 20",
}

SCENARIOS: dict[str, tuple[str, str, int]] = {
    # name: (definition, description, steps per execution)
    "chain_pure": (chain(1000, "sys.transform"), "1,000-step chain of sys.transform", 1000),
    "chain_io": (chain(1000, "bench.noop"), "1,000-step chain of async custom steps", 1000),
    "fanout_pure": (
        fan_out(1000, "sys.transform"),
        "1,000-way fan-out + join, sys.transform",
        1002,
    ),
    "fanout_io": (fan_out(1000, "bench.noop"), "1,000-way fan-out + join, async custom", 1002),
    "loop_1k": (loop(1000, 50, "bench.noop"), "1,000-item loop, concurrency 50", 1001),
    "loop_10k": (loop(10000, 50, "bench.noop"), "10,000-item loop, concurrency 50", 10001),
}


async def _measure(name: str) -> dict[str, Any]:
    registry = StepRegistry.with_builtins()
    registry.register(noop)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        async with Engine(url, registry=registry) as engine:
            if name == "children_200":
                await engine.push(engine.load_text(CHILD))
                workflow = engine.load_text(PARENT)
                start = time.perf_counter()
                doc = await engine.run(workflow)
                wall = time.perf_counter() - start
                assert doc["runtimeStatus"] == "Completed", doc["error"]
                steps = 200 * 3 + 1
            elif name == "executions_1k":
                workflow = engine.load_text(THREE_STEPS)
                await engine.run(workflow)  # warm the caches and the version row
                start = time.perf_counter()
                for _ in range(1000):
                    doc = await engine.run(workflow)
                    assert doc["runtimeStatus"] == "Completed"
                wall = time.perf_counter() - start
                steps = 3000
            else:
                text, _, steps = SCENARIOS[name]
                workflow = engine.load_text(text)
                start = time.perf_counter()
                execution_id = await engine.start(workflow)
                doc = await engine.drive(execution_id, document=False)
                wall = time.perf_counter() - start
                assert doc["runtimeStatus"] == "Completed", doc
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": name, "wall_s": wall, "steps": steps, "rss_mb": rss_mb}


def _report(result: dict[str, Any], floor: float) -> None:
    wall, steps = result["wall_s"], result["steps"]
    description = (
        SCENARIOS[result["name"]][1] if result["name"] in SCENARIOS else SPECIAL[result["name"]]
    )
    print(
        f"{description:<45} {wall:8.3f} s {steps / wall:10.0f} steps/s "
        f"{wall / steps * 1000:8.3f} ms/step {wall / steps / floor:6.1f}x floor "
        f"{result['rss_mb']:8.1f} MB peak RSS",
        flush=True,
    )


# -- many executions on one engine (issue 10, target 2) ---------------------------------------

EXECUTIONS = 200
W3_STEPS = chain(3, "bench.noop")


def registry() -> StepRegistry:
    found = StepRegistry.with_builtins()
    found.register(noop)
    return found


#: CPU seconds per step (the process's, every thread) of each gathered-shape measure, in
#: order: less moved by other processes' load than the wall time the measures return.
CPU_PER_STEP: list[float] = []


class _Span:
    """The wall and process CPU time of a measure's timed part, per step."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.wall = 0.0

    def __enter__(self) -> _Span:
        # The previous measures' engines are garbage in cycles (~15k objects each): left to
        # the collector, a full collection frees them inside whichever measure it lands in
        # (50-130 ms, a third of a 200-execution measure), the same one round after round.
        gc.collect()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = (time.perf_counter() - self._wall) / self.steps
        CPU_PER_STEP.append((time.process_time() - self._cpu) / self.steps)


async def _by_worker(
    engine: Engine, workflow: CompiledWorkflow, n: int, *, running_first: bool
) -> None:
    """``n`` starts one after another, run by an in-process worker (concurrency 50) that
    starts after them or is already running while they arrive."""
    worker = Worker(engine, WorkerOptions(concurrency=50, max_idle=0.01))
    running = asyncio.create_task(worker.run()) if running_first else None
    for _ in range(n):
        await engine.start(workflow)
    if running is None:
        running = asyncio.create_task(worker.run())
    while worker.completed < n:
        await asyncio.sleep(0.002)
    worker.stop()
    await running


async def run_by_worker(engine: Engine, workflow: CompiledWorkflow, n: int) -> None:
    """``n`` starts, then an in-process worker runs them (bench/compare.py's W3)."""
    await _by_worker(engine, workflow, n, running_first=False)


async def worker_during_starts(engine: Engine, workflow: CompiledWorkflow, n: int) -> None:
    """An in-process worker already running while ``n`` starts arrive one after another, as
    in a service (and as DBOS runs each workflow it starts, compare.py's W3): the worker
    takes each execution as it comes, so little is batched across executions."""
    await _by_worker(engine, workflow, n, running_first=True)


async def runs_in_turn(engine: Engine, workflow: CompiledWorkflow, n: int) -> None:
    """``n`` ``run`` calls one after another: a short execution's whole fixed cost."""
    for _ in range(n):
        found = await engine.run(workflow)
        assert found["runtimeStatus"] == "Completed", found


async def gather_start_drive(
    engine: Engine, workflow: CompiledWorkflow, n: int, document: bool = False
) -> None:
    """``gather`` of ``n`` tasks, each ``start`` then ``drive``."""

    async def one() -> None:
        found = await engine.drive(await engine.start(workflow), document=document)
        assert found["runtimeStatus"] == "Completed", found

    await asyncio.gather(*(one() for _ in range(n)))


async def gather_runs(engine: Engine, workflow: CompiledWorkflow, n: int) -> None:
    """``gather`` of ``n`` ``run`` calls."""
    docs = await asyncio.gather(*(engine.run(workflow) for _ in range(n)))
    assert all(d["runtimeStatus"] == "Completed" for d in docs)


Shape = Callable[[Engine, CompiledWorkflow, int], Awaitable[None]]


async def _timed_shape(url: str, shape: Shape) -> float:
    """Seconds per step of ``shape`` over EXECUTIONS executions, on a warmed engine."""
    async with Engine(url, registry=registry()) as engine:
        workflow = engine.load_text(W3_STEPS)
        await engine.run(workflow)  # warm caches and the version row
        with _Span(EXECUTIONS * 3) as span:
            await shape(engine, workflow, EXECUTIONS)
    return span.wall


async def worker_w3(url: str) -> float:
    """Seconds per step: EXECUTIONS starts, then an in-process worker runs them."""
    return await _timed_shape(url, run_by_worker)


async def gathered_start_drive(url: str) -> float:
    """Seconds per step: ``gather`` of EXECUTIONS tasks, each ``start`` then ``drive``."""
    return await _timed_shape(url, gather_start_drive)


async def gathered_run(url: str) -> float:
    """Seconds per step: ``gather`` of EXECUTIONS ``run`` calls."""
    return await _timed_shape(url, gather_runs)


async def worker_w3_during_starts(url: str) -> float:
    """Seconds per step: an in-process worker running while EXECUTIONS starts arrive."""
    return await _timed_shape(url, worker_during_starts)


async def runs_one_after_another(url: str) -> float:
    """Seconds per step: EXECUTIONS ``run`` calls one after another."""
    return await _timed_shape(url, runs_in_turn)


GATHERED: dict[str, Callable[[str], Awaitable[float]]] = {
    "gather(start + drive)": gathered_start_drive,
    "gather(run)": gathered_run,
    "in-process worker (50)": worker_w3,
    # Not gathered: how the same executions cost when they do not arrive together.
    "worker during the starts": worker_w3_during_starts,
    "run, one after another": runs_one_after_another,
}


@asynccontextmanager
async def _databases(pg: bool) -> AsyncIterator[Callable[[], str]]:
    """A maker of fresh, empty databases: SQLite files, or a throwaway PostgreSQL cluster's."""
    if not pg:
        with tempfile.TemporaryDirectory() as folder:
            made = iter(range(1_000_000))
            yield lambda: f"sqlite:///{Path(folder) / f'bench{next(made)}.db'}"
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import Cluster, find_bindir  # the same throwaway cluster the tests use

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's initdb is not installed")
    cluster = Cluster(bindir, durable=True)  # fsync=on, synchronous_commit=on
    try:
        cluster.start()
        yield lambda: cluster.url(cluster.create_database())
    finally:
        cluster.stop()


async def main_gathered(rounds: int, pg: bool) -> None:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in GATHERED}
    load = os.getloadavg()[0]
    async with _databases(pg) as fresh:
        for _ in range(rounds):
            for name, measure in GATHERED.items():
                wall = await measure(fresh())
                results[name].append((wall, CPU_PER_STEP[-1]))
    where = "PostgreSQL (fsync=on, synchronous_commit=on)" if pg else "SQLite (WAL, NORMAL)"
    print(f"{EXECUTIONS} executions x 3 steps on one engine, {where}, {rounds} interleaved "
          f"rounds, medians; load average {load:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
    worker = statistics.median(w for w, _ in results["in-process worker (50)"])
    for name, values in results.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        rounds_ = ", ".join(f"{w * 1e6:.0f}" for w, _ in values)
        print(
            f"{name:<24} {wall * 1e6:8.0f} us/step {wall / worker:6.2f}x the worker "
            f"{cpu * 1e6:6.0f} us CPU/step   (rounds: {rounds_})",
            flush=True,
        )


def main() -> None:
    if "--gathered" in sys.argv:
        numbers = [a for a in sys.argv[1:] if a.isdigit()]
        asyncio.run(main_gathered(int(numbers[0]) if numbers else 3, "--pg" in sys.argv))
        return
    names = sys.argv[1:] or [*SCENARIOS, *SPECIAL]
    if len(names) == 1 and names[0].startswith("--child="):
        result = asyncio.run(_measure(names[0].split("=", 1)[1]))
        print(json.dumps(result))
        return
    print(f"SQLite (WAL, synchronous=NORMAL), Python {sys.version.split()[0]}")
    floor = sqlite_commit_seconds(500)
    print(f"floor: a bare SQLite WAL commit (insert + update) takes {floor * 1e6:.1f} us")
    for name in names:
        proc = subprocess.run(
            [sys.executable, __file__, f"--child={name}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{name}: failed: {last}", flush=True)
            continue
        _report(json.loads(proc.stdout.strip().splitlines()[-1]), floor)


if __name__ == "__main__":
    main()

"""Validation cost against a definition's size (issue 10, target 5: linear).

Generates chains of N steps where each step reads its predecessor's output, ending in
a join that waits for every step, then times ``load_workflow_text`` and measures peak RSS,
each size in a fresh subprocess. Prints the 10,000 ÷ 1,000 time ratio (target: at most 12x).

    .venv/bin/python bench/validation_bench.py            # 1,000 and 10,000 steps
    .venv/bin/python bench/validation_bench.py 1000 3000  # chosen sizes
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def generated(n: int) -> str:
    """A chain of ``n`` steps, each reading the one before, plus a join after all of them."""
    lines = ["name: big", "steps:", "  - {id: s0, type: sys.transform, input: {value: 0}}"]
    for i in range(1, n):
        read = f"'{{{{ steps.s{i - 1}.output }}}}'"
        lines.append(f"  - {{id: s{i}, type: sys.transform, input: {{value: {read}}}}}")
    joined = ",".join(f"s{i}" for i in range(n))
    lines.append(
        f"  - {{id: join, type: sys.transform, after: [{joined}], "
        f"input: {{value: '{{{{ steps.s{n - 1}.output }}}}'}}}}"
    )
    return "\n".join(lines) + "\n"


def _measure(n: int) -> dict[str, float]:
    from flowledger.definition.compiler import load_workflow_text
    from flowledger.steps.registry import StepRegistry
    from flowledger.templates import TemplateEngine

    text = generated(n)
    registry = StepRegistry.with_builtins()
    templates = TemplateEngine()
    start = time.perf_counter()
    workflow = load_workflow_text(text, registry, templates)
    seconds = time.perf_counter() - start
    assert len(workflow.steps) == n + 1
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "seconds": seconds, "rss_mb": rss_mb, "bytes": len(text.encode())}


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 1 and args[0].startswith("--child="):
        print(json.dumps(_measure(int(args[0].split("=", 1)[1]))))
        return
    sizes = [int(a) for a in args] or [1000, 10000]
    results = []
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, __file__, f"--child={n}"], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{n} steps: failed: {last}", flush=True)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{n:>7} steps {result['bytes'] / 1024:8.0f} KiB {result['seconds']:8.3f} s "
            f"{result['rss_mb']:8.1f} MB peak RSS",
            flush=True,
        )
    if len(results) >= 2:
        ratio = results[-1]["seconds"] / results[0]["seconds"]
        size_ratio = results[-1]["n"] / results[0]["n"]
        print(f"time ratio {ratio:.1f}x for {size_ratio:.0f}x the steps")


if __name__ == "__main__":
    main()

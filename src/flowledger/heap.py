"""The heap of a long-running process (``flowledger serve``, ``flowledger worker``)."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Move what start-up made (modules, routes, models, compiled workflows: most of the
    heap) out of the cyclic collector's sight, once the process is ready to work.

    Each full collection walked all of it with the event loop stopped: 80-240 ms under
    ``flowledger serve`` (the periodic webhook stall of bench/api_bench.py), 30-50 ms in a
    worker, once every few hundred executions. Only the process's own command calls this:
    an application that embeds an Engine or a Worker keeps its collector as it set it."""
    gc.collect()
    gc.freeze()

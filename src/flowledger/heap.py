"""Python's cyclic collector around flowledger's heap: frozen once a long-running process
(``flowledger serve``, ``flowledger worker``) is ready, paused while a definition loads."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: The collector is off for this process's start-up (``pause_start_up``), not back yet.
_starting = False


def pause_start_up() -> None:
    """The ``flowledger`` process's first act: no collections while it imports and opens
    its application. They were ~9% of a whole ``flowledger run`` (185 collections, most
    walking modules and classes being built, none finding much); the command's own work
    (``end_start_up``) runs with the collector on, start-up's heap frozen out of its
    sight. Only the console command calls this: an application or a test that imports
    flowledger keeps its collector as it set it."""
    global _starting
    if gc.isenabled():
        gc.disable()
        _starting = True


def end_start_up() -> None:
    """The command is ready to work: freeze what start-up made (no full collection first:
    for a short command it would cost more than the little garbage it would free) and turn
    the collector back on. Does nothing unless ``pause_start_up`` turned it off."""
    global _starting
    if _starting:
        _starting = False
        gc.freeze()
        gc.enable()


def freeze_heap() -> None:
    """Move what start-up made (modules, routes, models, compiled workflows: most of the
    heap) out of the cyclic collector's sight, once the process is ready to work.

    Each full collection walked all of it with the event loop stopped: 80-240 ms under
    ``flowledger serve`` (the periodic webhook stall of bench/api_bench.py), 30-50 ms in a
    worker, once every few hundred executions. Only the process's own command calls this:
    an application that embeds an Engine or a Worker keeps its collector as it set it."""
    gc.collect()
    gc.freeze()
    end_start_up()


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for a burst that allocates much and leaves little cyclic
    garbage: loading a definition (parse, validate, compile).

    Every few hundred allocations it would walk the young objects, and each full
    collection the whole heap, which grows with the definition: 30-45% of the time of a
    1,000- or 10,000-step definition, and what made that time grow faster than its size
    (bench/validation_bench.py). Reference counting still frees what is dropped; cycles
    wait for the next collection after the load. Where the collector was already off (an
    application's choice, or a load inside a load) it stays as it was."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

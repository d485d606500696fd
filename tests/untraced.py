"""Pause the coverage measurement of this process (pytest-cov's, when it runs) around
code that runs none of flowledger in this process.

Coverage's tracer is called for every Python function call of the process, measured or
not: schemathesis and hypothesis generating requests for a server in another process
(tests/api/test_fuzz.py) ran about 1.7 times slower under it, for no line counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import coverage


@contextmanager
def coverage_paused() -> Iterator[None]:
    """Stop the running measurement, if any, and start it again afterwards."""
    running = coverage.Coverage.current()
    if running is None:
        yield
        return
    running.stop()
    try:
        yield
    finally:
        running.start()

"""Rules that refuse new definitions but never a stored one.

A rule added in a later release (a cron expression that fires far more often than it
reads) must not stop a workflow that was pushed before it and runs: the engine compiles
stored versions again in every process. Such rules ask :func:`checking_new` and hold
back while :func:`stored_definitions` is in effect; every other rule holds always.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_NEW = ContextVar("flowledger_checking_new_definitions", default=True)


def checking_new() -> bool:
    """True unless a stored version is being compiled."""
    return _NEW.get()


@contextlib.contextmanager
def stored_definitions() -> Iterator[None]:
    """Compile stored versions: the rules for new definitions only hold back."""
    token = _NEW.set(False)
    try:
        yield
    finally:
        _NEW.reset(token)

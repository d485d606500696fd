"""The whole ``flowledger`` command (SPEC §5): every command module imported, so each
registers its commands on the shared Typer apps of :mod:`cli.common`.

The entry point (:func:`flowledger.cli.main`) loads only the invoked command's modules
(:mod:`cli.launch`); this module is the whole command for ``--help`` and for tests.
"""

from __future__ import annotations

import sys

# Each module registers its commands when imported; this order is the help's order.
from flowledger.cli import (  # noqa: F401
    artifacts,
    control,
    dbinfo,
    entities,
    executions,
    jobs,
    logs,
    prune,
    running,
    serve,
    steps,
    tokens,
    triggers,
    workflows,
)
from flowledger.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    from flowledger.cli.launch import launch

    launch(sys.argv[1:])

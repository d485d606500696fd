"""The command-line face.

``main`` is the ``flowledger`` entry point: ``--version`` answers before Typer and the
command modules are imported, which is most of a cold start.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from flowledger import __version__

        print(f"flowledger {__version__}")
        return
    from flowledger.cli.app import main as run_app

    run_app()

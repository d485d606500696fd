"""The command-line face.

``main`` is the ``flowledger`` entry point: ``--version`` answers before Typer and the
command modules are imported; any other command loads only its own modules (cli.launch).
"""

from __future__ import annotations

import sys


def entry() -> None:
    """The ``flowledger`` console command (and ``python -m flowledger``): :func:`main`
    with Python's collector paused while it starts (flowledger.heap). Tests call ``main``
    in their own process, whose collector is theirs."""
    from flowledger.heap import pause_start_up

    pause_start_up()
    main()


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from flowledger import __version__

        print(f"flowledger {__version__}")
        return
    from flowledger.cli.launch import launch

    launch(sys.argv[1:])

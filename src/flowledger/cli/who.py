"""Who the command line acts as: the ``createdBy`` / ``by`` it records."""

from __future__ import annotations

import getpass
import os


def cli_user() -> str:
    """``cli:<login name>``: from the environment, else the account this process runs
    as (a service or a container often sets no USER)."""
    name = os.environ.get("USER") or os.environ.get("USERNAME")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # a uid with no account
            name = "unknown"
    return f"cli:{name}"

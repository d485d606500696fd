"""`flowledger` commands: jobs."""

from __future__ import annotations

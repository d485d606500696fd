"""`flowledger` commands: artifacts."""

from __future__ import annotations

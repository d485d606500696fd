"""`flowledger` commands: workflows."""

from __future__ import annotations

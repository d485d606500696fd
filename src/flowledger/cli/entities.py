"""`flowledger` commands: entities."""

from __future__ import annotations

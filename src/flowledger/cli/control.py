"""`flowledger` commands: control."""

from __future__ import annotations

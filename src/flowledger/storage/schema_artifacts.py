"""Tables of the artifacts part of the workflow model (on the shared metadata of schema.py)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text  # noqa: F401

from flowledger.storage.schema import UTCDateTime, metadata  # noqa: F401

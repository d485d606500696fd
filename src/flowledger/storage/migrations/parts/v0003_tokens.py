"""Revision 0003, tokens tables (frozen copy; never import schema*.py here)."""

from __future__ import annotations


def upgrade() -> None:
    """Nothing yet: the tables of this part are added with the code that uses them."""

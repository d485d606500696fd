"""Tables of the service face's tokens (revision 0003), on the shared metadata."""

from __future__ import annotations

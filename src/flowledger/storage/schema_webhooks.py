"""Tables of the service face's webhooks (revision 0003), on the shared metadata."""

from __future__ import annotations

"""What a cancel recorded on an execution, read back from its ``error``: runtime.lifecycle
writes ``{"message": "cancelled: REASON", "cancelledBy": WHO}`` (the API's document keeps
that message), and a face that heads the reason as a reason shows REASON alone, as the
web's notice does (tour 24: the CLI printed ``reason: cancelled: withdrawn``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowledger.runtime.lifecycle import CANCELLED_PREFIX


@dataclass(frozen=True)
class CancelReason:
    reason: str
    by: str | None


def cancel_reason(error: Mapping[str, Any] | None) -> CancelReason | None:
    """The reason and sender of the cancel that ``error`` records (None: it records none)."""
    if not error or not isinstance(error.get("message"), str):
        return None
    by = error.get("cancelledBy")
    return CancelReason(
        error["message"].removeprefix(CANCELLED_PREFIX), by if isinstance(by, str) else None
    )

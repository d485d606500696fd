"""Per-caller limits on what a caller may hold open at once: live event streams and
long-poll waits (issue 13 point 10). A caller is an API token's name; requests without
one (the CLI, Python) are not counted. Counted per process: N API nodes allow N times
the limit, which bounds each node's memory and connections, the point of the limit.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from flowledger.config import SSE_PER_TOKEN_ENV, WAITS_PER_TOKEN_ENV, Settings
from flowledger.errors import LimitExceededError


@dataclass(frozen=True)
class LiveLimits:
    sse_per_caller: int = 10
    waits_per_caller: int = 50
    #: Seconds between keep-alive comments on a quiet event stream.
    keepalive: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveLimits:
        return cls(settings.sse_per_token, settings.waits_per_token, settings.sse_keepalive)


class Slots:
    """Counts what each caller holds; :meth:`take` refuses past the limit."""

    def __init__(self, limits: LiveLimits) -> None:
        self.limits = limits
        self._held: Counter[tuple[str, str]] = Counter()

    @contextlib.contextmanager
    def take(self, kind: str, caller: str | None) -> Iterator[None]:
        """Hold one ``kind`` (``"stream"`` or ``"wait"``) for ``caller`` while inside."""
        if caller is None:
            yield
            return
        key = (kind, caller)
        limit, setting, what = (
            (self.limits.sse_per_caller, SSE_PER_TOKEN_ENV, "live event streams")
            if kind == "stream"
            else (self.limits.waits_per_caller, WAITS_PER_TOKEN_ENV, "long-poll waits")
        )
        if self._held[key] >= limit:
            raise LimitExceededError(
                f"{caller!r} already holds {limit} {what}, the most one token may hold at "
                f"once ({setting}={limit}); close one or retry later",
                limit=setting,
            )
        self._held[key] += 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]

"""Per-caller limits on what a caller may hold open at once: live event streams and
long-poll waits (``Limits.max_streams``, ``Limits.max_waits``; issue 13 point 10).

A caller is an API token's name; requests without one (the CLI, Python) are not
counted. Counted per process: N API nodes allow N times the limit, which still bounds
each node's memory and connections — the point of the limit.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Literal

from flowledger.config import LIMIT_ENVS, Limits
from flowledger.errors import TooManyError

Kind = Literal["stream", "wait"]


class Slots:
    """Counts what each caller holds; :meth:`take` refuses past the limit (429)."""

    def __init__(self, limits: Limits) -> None:
        #: The server replaces this with its settings' limits (``api.server``).
        self.limits = limits
        self._held: Counter[tuple[str, str]] = Counter()

    def held(self, kind: Kind, caller: str) -> int:
        return self._held[(kind, caller)]

    @contextlib.contextmanager
    def take(self, kind: Kind, caller: str | None) -> Iterator[None]:
        """Hold one ``kind`` for ``caller`` while inside (TooManyError past the limit)."""
        if caller is None:
            yield
            return
        key = (kind, caller)
        if kind == "stream":
            limit, setting, what = self.limits.max_streams, "max_streams", "live event streams"
        else:
            limit, setting, what = self.limits.max_waits, "max_waits", "long-poll waits"
        if self._held[key] >= limit:
            raise TooManyError(
                f"{caller!r} already holds {limit} {what}, the most one token may hold at "
                f"once ({LIMIT_ENVS[setting]}={limit}); close one or retry later",
                limit=limit,
            )
        self._held[key] += 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]

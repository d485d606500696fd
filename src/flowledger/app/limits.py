"""Checks of what comes in against the configured :class:`flowledger.config.Limits`.

Every face calls these before anything is stored, so bad input never reaches the
database half-written; each refusal names the limit and the setting that moves it.
"""

from __future__ import annotations

import re
from itertools import accumulate

from pydantic import BaseModel

from flowledger.config import LIMIT_ENVS
from flowledger.errors import InvalidInputError, TooLargeError
from flowledger.types import PathSegment

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def too_large(
    what: str, limit: int, setting: str, path: tuple[PathSegment, ...] = ()
) -> TooLargeError:
    env = LIMIT_ENVS[setting]
    return TooLargeError(
        f"{what} is larger than the limit of {_size(limit)} ({env})", path, limit=limit
    )


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (strings ignored), without parsing
    it (a parser would recurse as deep as the text)."""
    stripped = _NOT_BRACKETS.sub(b"", _STRINGS.sub(b"", body))
    steps = (1 if c in b"[{" else -1 for c in stripped)
    return max(accumulate(steps), default=0)


def check_json_depth(body: bytes, limit: int) -> None:
    """InvalidInputError when the JSON text nests deeper than ``limit``."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return  # cannot nest deeper than it has brackets
    if json_depth(body) > limit:
        raise InvalidInputError(
            f"the JSON nests deeper than the limit of {limit} levels "
            f"({LIMIT_ENVS['max_json_depth']})"
        )


def check_text_size(text: str, limit: int, what: str, setting: str) -> None:
    """TooLargeError when ``text`` encoded as UTF-8 is over ``limit`` bytes."""
    if len(text) > limit or len(text.encode("utf-8")) > limit:
        raise too_large(what, limit, setting)


def page_size(request: BaseModel, max_page: int) -> int:
    """A listing's ``limit``: InvalidInputError when one given is over the configured
    maximum; a default over it is lowered to it."""
    limit: int = getattr(request, "limit")  # noqa: B009 - every listing request has one
    if "limit" not in request.model_fields_set:
        return min(limit, max_page)
    if limit > max_page:
        raise InvalidInputError(
            f"limit must be at most {max_page} ({LIMIT_ENVS['max_page']})", ("limit",)
        )
    return limit

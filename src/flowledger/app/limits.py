"""Checks of what comes in against the configured :class:`flowledger.config.Limits`.

Every face calls these before anything is stored, so bad input never reaches the
database half-written; each refusal names the limit and the setting that moves it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from pydantic import BaseModel

from flowledger.config import LIMIT_ENVS
from flowledger.errors import (
    InvalidInputError,
    RepeatedHeaderError,
    TooLargeError,
    UnsupportedEncodingError,
)
from flowledger.jsonvalues import NUL_REFUSED
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


def hook_body_too_large(limit: int) -> TooLargeError:
    """A webhook's body over ``FLOWLEDGER_HOOK_BODY_LIMIT``, which alone bounds the bodies
    of ``POST /hooks/{path}`` (senders' payloads may be larger than API requests)."""
    return TooLargeError(
        f"the body is larger than the webhook body limit of {_size(limit)} "
        "(FLOWLEDGER_HOOK_BODY_LIMIT)",
        ("body",),
        limit=limit,
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


#: Request headers that decide what a request does, each to be sent once: with two, one
#: reader takes the first and another the last (a start keyed by one, a replay check by
#: the other), so the request is refused instead. Lower-case names, as HTTP servers give
#: them, to how people write them.
SINGLE_HEADERS = {
    # Two credentials: the first was taken (a viewer's then an admin's token acted as the
    # viewer, the other way round as the admin), so which one a proxy added decided.
    b"authorization": "Authorization",
    b"idempotency-key": "Idempotency-Key",
    b"webhook-id": "webhook-id",
    b"webhook-timestamp": "webhook-timestamp",
}


def repeated_header_error(names: list[bytes]) -> RepeatedHeaderError | None:
    """The refusal of a request that sent one of :data:`SINGLE_HEADERS` more than once
    (``names``: those of its header names that are in it), or None."""
    for name in names:
        count = names.count(name)
        if count > 1:
            header = SINGLE_HEADERS[name]
            # Said after its path: "headers.Idempotency-Key: sent 2 times; …".
            return RepeatedHeaderError(
                f"sent {count} times; send the header once", ("headers", header)
            )
    return None


def encoding_error(values: list[bytes]) -> UnsupportedEncodingError | None:
    """The refusal of a request body sent with a ``Content-Encoding`` (``values``: each
    such header's value) other than ``identity``, or None. Nothing is decompressed: a
    gzip body was read as it came and refused as "not UTF-8 text", and a plain one
    labelled gzip was taken."""
    codings = [c.strip().lower() for v in values for c in v.split(b",") if c.strip()]
    other = [c for c in codings if c != b"identity"]
    if not other:
        return None
    named = ", ".join(c.decode("latin-1") for c in other)
    return UnsupportedEncodingError(
        f"{named} is not accepted; send the body uncompressed (identity)",
        ("headers", "Content-Encoding"),
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


def check_no_nul(value: Any, path: tuple[PathSegment, ...]) -> None:
    """InvalidInputError naming the field when a string in ``value`` (JSON: an object's
    keys too, at any depth) holds a NUL character. Decision: refused everywhere, on every
    backend, because PostgreSQL stores U+0000 neither in text nor in jsonb; a value one
    database accepts and the other refuses would be a trap."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInputError(NUL_REFUSED, path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                raise InvalidInputError(NUL_REFUSED, (*path, key))
            check_no_nul(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_no_nul(item, (*path, index))
    elif isinstance(value, BaseModel):
        check_fields_no_nul(value, path)


def check_fields_no_nul(request: BaseModel, path: tuple[PathSegment, ...] = ()) -> None:
    """:func:`check_no_nul` over every field of a request, each named as a client
    names it (its camelCase alias)."""
    for name, field in type(request).model_fields.items():
        check_no_nul(getattr(request, name), (*path, field.alias or name))

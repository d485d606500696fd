"""Bare references: ``{{ steps.a.output.x }}`` read without compiling or running Jinja.

Most templates in a definition are one dotted read. Compiling one through Jinja costs about
0.7 ms and rendering it a fresh Jinja context; this path recognises the shape with one regex
and walks the mappings directly. Anything it is not sure of (a missing key, a non-mapping on
the way, a name that Jinja treats specially) is left to the full template, so results and
error messages are the same as Jinja's.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Any, Final

_MAX_SOURCE = 512
_IDENT = r"[A-Za-z][A-Za-z0-9_]*"
_BARE = re.compile(rf"\s*\{{\{{\s*({_IDENT}(?:\.{_IDENT})*)\s*\}}\}}\s*")
#: Names the Jinja lexer or the sandbox treat as something other than a plain read.
_SPECIAL = frozenset({"true", "false", "none", "self", "range", "and", "or", "not", "in", "is"})

#: Returned by :func:`read` when the fast walk cannot answer.
MISSING: Final = object()


def bare_path(source: str) -> tuple[str, ...] | None:
    """The dotted path when ``source`` is exactly one plain read, else None."""
    if len(source) > _MAX_SOURCE or "{{" not in source:
        return None
    match = _BARE.fullmatch(source)
    if match is None:
        return None
    path = tuple(match.group(1).split("."))
    if any(part in _SPECIAL or keyword.iskeyword(part) for part in path):
        return None
    return path


def read(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path``, or :data:`MISSING` when only the full template can say."""
    value: Any = context
    for part in path:
        if not (type(value) is dict or isinstance(value, Mapping)):
            return MISSING
        try:
            value = value[part]
        except (KeyError, TypeError):
            return MISSING
        except Exception:  # e.g. an offloaded output whose file is gone: the full
            return MISSING  # template says so, as a template error the step fails with
    return value

"""Characters in data that must not reach a reader as they are: every face shows them
(the command line as control pictures, the web as ``\\u202e`` escapes), one class here so
the faces cannot disagree on which.

C0 and C1 controls would clear or retitle a terminal; the bidirectional controls
(U+202E "right-to-left override" and its kin) reorder what a reader sees, so a value
could make the text around it spell something else (Trojan Source). Tabs and line
feeds are kept. Stored data is never changed: only what is shown.
"""

from __future__ import annotations

import re

#: C0 and C1 controls but tab and line feed, and the bidirectional controls.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def escaped(text: str) -> str:
    """``text`` with each control character spelled as its JSON escape (``\\u202e``):
    visible, and inside a JSON string the same value it stands for."""
    return CONTROL.sub(_escape, text) if CONTROL.search(text) else text

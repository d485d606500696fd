"""Runs of consecutive characters of a secret, found inside longer text.

The codec replaces every whole spelling of a secret; this finds what is left of one
when only part of it was stored: a server echoing the first 20 characters of an
``Authorization`` header, an error message quoting a token minus its last character.
A run counts when it holds at least half of the secret, and at least :data:`MIN_RUN`
characters, wherever it starts in the secret; a run of digits alone never counts.

Why half, not a fixed eight (the first version): secrets have structure that ordinary
text shares. A chat service's webhook URL begins ``https://hooks.example.com/services/``,
a private key ``-----BEGIN PRIVATE KEY-----``, a numeric secret shares digits with every
number: with eight characters, ``https://example.com/services/docs`` was stored as
``***secrets.SLACK***example***…`` and the integer ``1234567890`` became a string, which
a resumed execution's next step then read. Half a secret is still what a leak looks like
(a server echoing the first 20 characters of an ``Authorization`` header, a message
quoting a token minus its last character); a shorter piece is left, a known limit.

How it stays linear in the text's size: a run counts only when it is at least
``least`` characters long, so it holds one of the secret's *anchors*, its
:data:`ANCHOR`-character slices at offsets ``0, s, 2s, …`` with ``s = least - ANCHOR +
1``: about three anchors whatever the secret's length (half of it is the shortest run).
The text is searched for each anchor with ``str.find``, at C speed, and each hit is
extended both ways as far as text and secret agree. A secret's encoded spellings (hex,
base64) are searched the same way: a 1 KB text costs ~3 us a spelling. (The first
version found runs of eight characters with anchors every five: up to ~48 anchors were
searched one by one, a longer secret sampled every fifth 4-gram of the text in Python,
and a secret's eight encoded spellings cost a 1 KB text 65 us instead of 8.) A regular
expression alternating the secret's slices, the obvious way, was slowest: ``re`` tries
the alternatives one by one at each position. A secret that repeats itself
(``abababab…``) makes many hits; a generated one does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import AnyStr, Generic

#: The shortest run redacted, whatever the secret's length (see the module docstring).
MIN_RUN = 12
#: Length of the slices searched for (see the module docstring).
ANCHOR = 6


class SecretParts(Generic[AnyStr]):
    """Finds, in a text (``str``) or data (``bytes``), every run of at least ``least``
    consecutive characters of ``secret`` (not digits alone)."""

    def __init__(self, secret: AnyStr) -> None:
        self.secret: AnyStr = secret
        #: The shortest run of it that counts: half of it, at least MIN_RUN characters.
        self.least = max(MIN_RUN, -(-len(secret) // 2))
        # Every run of ``least`` characters holds the slice at one of these offsets.
        self._anchors: dict[AnyStr, list[int]] = _slices(secret, self.least - ANCHOR + 1)

    def spans(self, text: AnyStr, *, before: int | None = None) -> list[tuple[int, int]]:
        """``(start, end)`` of each run in ``text``, overlapping runs merged, in order;
        only those starting ``before`` an offset when given (more text follows: a run
        near the end may go on in it, or be part of a whole spelling that does)."""
        # Text offset minus secret offset -> the last run found along that alignment.
        seen: dict[int, tuple[int, int]] = {}
        found = []
        for at, offset in self._hits(text):
            last = seen.get(at - offset)
            if last is not None and last[0] <= at and at + ANCHOR <= last[1]:
                continue  # inside a run already found: extending again finds the same
            start, end = _extend(text, at, self.secret, offset)
            seen[at - offset] = (start, end)
            if end - start >= self.least and not text[start:end].isdigit():
                found.append((start, end))
        spans = _merged(found)
        return spans if before is None else [span for span in spans if span[0] < before]

    def _hits(self, text: AnyStr) -> Iterator[tuple[int, int]]:
        """``(text offset, secret offset)`` where text and secret share ANCHOR characters."""
        for anchor, offsets in self._anchors.items():
            at = text.find(anchor)
            while at != -1:
                for offset in offsets:
                    yield at, offset
                at = text.find(anchor, at + 1)

    def redact(self, text: AnyStr, mark: AnyStr, *, before: int | None = None) -> AnyStr:
        """``text`` with every run (starting ``before`` that offset) replaced by ``mark``."""
        spans = self.spans(text, before=before)
        if not spans:
            return text
        pieces = []
        done = 0
        for start, end in spans:
            pieces += [text[done:start], mark]
            done = end
        pieces.append(text[done:])
        return text[:0].join(pieces)


def _slices(secret: AnyStr, step: int) -> dict[AnyStr, list[int]]:
    """The secret's ANCHOR-long slices at offsets ``0, step, 2*step, …``, each with
    every one of those offsets it is found at."""
    slices: dict[AnyStr, list[int]] = {}
    for offset in range(0, len(secret) - ANCHOR + 1, step):
        slices.setdefault(secret[offset : offset + ANCHOR], []).append(offset)
    return slices


def _extend(text: AnyStr, at: int, secret: AnyStr, offset: int) -> tuple[int, int]:
    """The run around ``text[at:at+ANCHOR] == secret[offset:offset+ANCHOR]``: as far
    both ways as text and secret agree."""
    back = 0
    while back < min(at, offset) and text[at - back - 1] == secret[offset - back - 1]:
        back += 1
    ahead = ANCHOR
    limit = min(len(text) - at, len(secret) - offset)
    while ahead < limit and text[at + ahead] == secret[offset + ahead]:
        ahead += 1
    return at - back, at + ahead


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping or touching spans joined: one mark for one stretch."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged

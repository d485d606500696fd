"""Ids for rows written on the hot path, cheaper than ``str(uuid.uuid4())``.

The same text a UUID has (random bits from ``os.urandom``), but one system call serves
256 ids and no ``UUID`` object is built: about a third of the cost per step.
``ordered_uuid`` leads with the time (version 7), so a new row's key lands at the end of
the primary-key index instead of at a random page of it.
"""

from __future__ import annotations

import os
import time
from collections import deque

from flowledger.errors import NotFoundError
from flowledger.jsonvalues import encodable_text, spelled

_BATCH = 256
_VARIANT = "89ab89ab89ab89ab"  # the two variant bits 10, by the random nibble's low bits
#: The same by the random hex digit itself (no int() per id).
_VARIANT_OF = {f"{n:x}": _VARIANT[n] for n in range(16)}
#: Random hex digits in pieces of 16, shared by every thread: ``deque.pop`` hands each
#: piece to one caller (atomic under the GIL). A ``threading.local`` buffer cost ~4.8k
#: instructions an id (its attribute reads), this ~0.3k.
_pool: deque[str] = deque()
#: The millisecond of the last ordered id, and its text (replaced whole, so a thread reads
#: one consistent pair): a chain's ids fall in the same millisecond several at a time.
_millisecond: tuple[int, str] = (-1, "")


def _forget() -> None:
    """A forked child must not hand out the ids its parent has left in its pool."""
    _pool.clear()


os.register_at_fork(after_in_child=_forget)


def _random_hex16() -> str:
    """16 random hex digits, cut from a batch of ``os.urandom`` (one system call serves
    ``_BATCH`` of them)."""
    try:
        return _pool.pop()
    except IndexError:
        text = os.urandom(8 * _BATCH).hex()
        _pool.extend([text[at : at + 16] for at in range(16, len(text), 16)])
        return text[:16]


def random_uuid() -> str:
    """A random UUID (version 4) as text, like ``str(uuid.uuid4())``."""
    h = _random_hex16() + _random_hex16()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT_OF[h[16]]}{h[17:20]}-{h[20:]}"


def ordered_uuid() -> str:
    """A time-ordered UUID (version 7, RFC 9562): the Unix time in milliseconds, then
    12 bits of the sub-millisecond fraction (its method 3), then 62 random bits. Texts by
    ``hex()`` of a number with a leading 1 bit, cut: a format spec (``:015x``) costs
    several times more."""
    global _millisecond
    ms, sub = divmod(time.time_ns(), 1_000_000)
    known, head = _millisecond
    if ms != known:
        digits = hex(ms & 0xFFFF_FFFF_FFFF | 1 << 48)  # "0x1" and 12 digits
        head = f"{digits[3:11]}-{digits[11:]}-7"
        _millisecond = (ms, head)
    fraction = hex(sub * 4096 // 1_000_000 | 0x1000)  # "0x1" and 3 digits
    h = _random_hex16()
    return f"{head}{fraction[3:]}-{_VARIANT_OF[h[0]]}{h[1:4]}-{h[4:]}"


def known_execution_id(execution_id: str) -> None:
    """NotFoundError, as for any id that names no execution, when ``execution_id`` holds
    a lone surrogate: asked of the database, it raised a raw UnicodeEncodeError."""
    if not encodable_text(execution_id):
        raise NotFoundError(f"execution {spelled(execution_id)} does not exist")

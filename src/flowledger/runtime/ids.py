"""Ids for rows written on the hot path, cheaper than ``str(uuid.uuid4())``.

The same text a UUID has (random bits from ``os.urandom``), but one system call serves
256 ids and no ``UUID`` object is built: about a third of the cost per step.
``ordered_uuid`` leads with the time (version 7), so a new row's key lands at the end of
the primary-key index instead of at a random page of it.
"""

from __future__ import annotations

import os
import threading
import time

from flowledger.errors import NotFoundError
from flowledger.jsonvalues import encodable_text, spelled

_BATCH = 256
_VARIANT = "89ab89ab89ab89ab"  # the two variant bits 10, by the random nibble's low bits
#: The same by the random hex digit itself (no int() per id).
_VARIANT_OF = {f"{n:x}": _VARIANT[n] for n in range(16)}


class _RandomIds(threading.local):
    def __init__(self) -> None:
        self.hex = ""
        self.at = 0


_state = _RandomIds()


def _forget() -> None:
    """A forked child must not hand out the ids its parent has left in its buffer."""
    _state.hex, _state.at = "", 0


os.register_at_fork(after_in_child=_forget)


def _random_hex(digits: int) -> str:
    """``digits`` random hex digits, cut from this thread's batch of ``os.urandom``."""
    state = _state
    at = state.at
    if at + digits > len(state.hex):
        state.hex, at = os.urandom(16 * _BATCH).hex(), 0
    state.at = at + digits
    return state.hex[at : at + digits]


def random_uuid() -> str:
    """A random UUID (version 4) as text, like ``str(uuid.uuid4())``."""
    h = _random_hex(32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT_OF[h[16]]}{h[17:20]}-{h[20:]}"


def ordered_uuid() -> str:
    """A time-ordered UUID (version 7, RFC 9562): the Unix time in milliseconds, then
    12 bits of the sub-millisecond fraction (its method 3), then 62 random bits."""
    ms, sub = divmod(time.time_ns(), 1_000_000)
    h = _random_hex(16)
    t = f"{(ms & 0xFFFF_FFFF_FFFF) << 12 | sub * 4096 // 1_000_000:015x}"
    return f"{t[:8]}-{t[8:12]}-7{t[12:]}-{_VARIANT_OF[h[0]]}{h[1:4]}-{h[4:16]}"


def known_execution_id(execution_id: str) -> None:
    """NotFoundError, as for any id that names no execution, when ``execution_id`` holds
    a lone surrogate: asked of the database, it raised a raw UnicodeEncodeError."""
    if not encodable_text(execution_id):
        raise NotFoundError(f"execution {spelled(execution_id)} does not exist")

"""Unpadded URL-safe base64, the form of the signed tokens the application hands out
(page cursors, session cookies), read back strictly.

Strictly: text that is not exactly what ``encode`` makes of the bytes it decodes to is
refused. Python's decoder is lenient: it ignores the bits the last character carries
beyond the data, drops characters outside the alphabet and takes padding, so an edited
token could decode to the signature it had.
"""

from __future__ import annotations

import base64


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """The bytes ``text`` encodes; ValueError unless ``text`` is their one encoding."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:  # binascii.Error (bad length, padding), or non-ASCII text
        raise ValueError("not unpadded URL-safe base64") from exc
    if encode(data) != text:
        raise ValueError("not the canonical unpadded URL-safe base64 of its bytes")
    return data

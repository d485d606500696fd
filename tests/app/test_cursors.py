"""Page cursors: a cursor names a position in one listing with one set of filters, and
anything else (edited, forged, another listing's, a keyset one read as a count) is a
CursorError on the ``cursor`` field."""

from __future__ import annotations

import base64
import string
from datetime import UTC, datetime

import pytest

from flowledger.app.cursors import CursorCodec
from flowledger.errors import CursorError

AT = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)


def test_positions_and_counts_come_back_as_given() -> None:
    codec = CursorCodec(b"k" * 32)
    keyset = codec.encode("jobs", {"a": 1}, AT, "id-1")
    assert codec.decode("jobs", {"a": 1}, keyset) == (AT, "id-1")
    counted = codec.encode_offset("entities-ordered", {"orderBy": ["-Score"]}, 40)
    assert codec.decode_offset("entities-ordered", {"orderBy": ["-Score"]}, counted) == 40


@pytest.mark.parametrize(
    "misuse",
    [
        lambda c, t: c.decode("jobs", {"a": 2}, t),  # other filters
        lambda c, t: c.decode("workflows", {"a": 1}, t),  # another listing
        lambda c, t: c.decode_offset("jobs", {"a": 1}, t),  # a position read as a count
        lambda c, t: CursorCodec(b"x" * 32).decode("jobs", {"a": 1}, t),  # another key
        lambda c, t: c.decode("jobs", {"a": 1}, t[:-3] + "AAA"),  # an edited signature
        lambda c, t: c.decode("jobs", {"a": 1}, "not-a-cursor"),
    ],
)
def test_a_cursor_used_elsewhere_is_refused(misuse: object) -> None:
    codec = CursorCodec(b"k" * 32)
    token = codec.encode("jobs", {"a": 1}, AT, "id-1")
    with pytest.raises(CursorError) as caught:
        misuse(codec, token)  # type: ignore[operator]
    assert caught.value.field_path == ("cursor",)


def test_a_cursor_must_be_the_text_it_was_sealed_as() -> None:
    """Base64's last character carries bits the decoder ignores: a token edited there
    decodes to the same bytes, and is still refused (it is not what the listing gave)."""
    codec = CursorCodec(b"k" * 32)
    token = codec.encode("jobs", {"a": 1}, AT, "id-1")
    head, _, mac = token.partition(".")
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    # A 32-byte signature is 43 characters; the last one's two low bits are padding.
    same_bytes = alphabet[alphabet.index(mac[-1]) ^ 1]
    edited = f"{head}.{mac[:-1]}{same_bytes}"
    assert base64.urlsafe_b64decode(edited.partition(".")[2] + "=") == base64.urlsafe_b64decode(
        mac + "="
    )
    with pytest.raises(CursorError):
        codec.decode("jobs", {"a": 1}, edited)
    padded = f"{head}.{mac}="  # the same signature, written another way
    with pytest.raises(CursorError):
        codec.decode("jobs", {"a": 1}, padded)

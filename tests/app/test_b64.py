"""app.b64: the tokens' base64 reads back only what it writes."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.app import b64

ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


@given(st.binary(max_size=80))
def test_bytes_come_back_as_written(data: bytes) -> None:
    assert b64.decode(b64.encode(data)) == data


@given(st.text(alphabet=ALPHABET + "=.+/ ", max_size=60))
def test_only_the_one_encoding_of_some_bytes_is_read(text: str) -> None:
    try:
        data = b64.decode(text)
    except ValueError:
        return
    assert b64.encode(data) == text


def test_edits_the_lenient_decoder_would_take_are_refused() -> None:
    token = b64.encode(bytes(range(32)))  # 43 characters: the last holds two spare bits
    same_bytes = token[:-1] + ALPHABET[ALPHABET.index(token[-1]) ^ 1]
    for edited in (same_bytes, token + "=", token[:5] + "." + token[5:], token + "\n", "é"):
        with pytest.raises(ValueError, match="URL-safe base64"):
            b64.decode(edited)

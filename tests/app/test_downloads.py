"""The download header of an artifact (app.downloads): any stored name, Latin-1 or not,
becomes a header value that is plain ASCII, carries the exact name in ``filename*`` and a
harmless ASCII one in ``filename``."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger.app.downloads import content_disposition

#: RFC 6266's grammar for this value: a quoted ASCII ``filename``, then an RFC 8187
#: ``filename*`` (attr-chars and %XX only).
SHAPE = re.compile(
    r'attachment; filename="(?P<fallback>[ !#-\[\]-~]*)"; '
    r"filename\*=UTF-8''(?P<encoded>(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})*)"
)


def read_back(value: str) -> tuple[str, str]:
    """The name a browser reads from ``filename*``, and the ASCII fallback."""
    found = SHAPE.fullmatch(value)
    assert found, value
    return unquote(found["encoded"], errors="strict"), found["fallback"]


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("report.csv", "report.csv"),
        ("文件.txt", "__.txt"),
        ("étrange.html", "_trange.html"),
        ('say "hi".txt', "say _hi_.txt"),
        ("a;b=c.txt", "a_b=c.txt"),
        ("back\\slash%41.txt", "back_slash_41.txt"),
        ("evil\r\nSet-Cookie: x=1.txt", "evil__Set-Cookie: x=1.txt"),
        ("", "download"),
    ],
)
def test_the_name_survives_and_the_fallback_is_harmless(name: str, fallback: str) -> None:
    value = content_disposition(name)
    value.encode("ascii")  # Starlette sends it as Latin-1: ASCII is that, unchanged
    assert read_back(value) == (name, fallback)


@given(st.text(max_size=40))
def test_any_name_is_an_ascii_header(name: str) -> None:
    value = content_disposition(name)
    assert all(" " <= c <= "~" for c in value)  # no CR, LF or other control either
    read, fallback = read_back(value)
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        assert read == name
    assert len(fallback) == len(name) or fallback == "download"

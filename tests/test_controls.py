"""The one rule of which characters in data no face shows as they are."""

from __future__ import annotations

import json

from flowledger.controls import CONTROL, escaped


def test_controls_are_spelled_as_their_json_escapes() -> None:
    # A right-to-left override makes "exe.txt" read as "txt.exe": spelled, not obeyed.
    assert escaped("invoice\u202etxt.exe") == "invoice\\u202etxt.exe"
    assert (
        escaped("a\u2066b\u2069c\u200fd\x1b[2J\x9b") == "a\\u2066b\\u2069c\\u200fd\\u001b[2J\\u009b"
    )
    assert escaped("tab\tand\nlines") == "tab\tand\nlines"
    assert escaped("grüße ✓ שלום") == "grüße ✓ שלום"  # text in any script stays


def test_inside_a_json_string_the_escape_is_the_same_value() -> None:
    value = {"k\u202eey": "bad \u202eevil"}
    shown = escaped(json.dumps(value, ensure_ascii=False))
    assert not CONTROL.search(shown) and json.loads(shown) == value

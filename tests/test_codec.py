"""The codec's ``loads``: the C scanner's shortcut answers what ``json.loads`` answers;
what of a webhook URL is shown where it may be a credential."""

from __future__ import annotations

import json

import pytest

from flowledger.codec import loads, origin_only, url_hidden


@pytest.mark.parametrize(
    "text",
    ["null", "{}", '{"value":0}', '{"type":"function","arguments":{}}', "[1,2.5,\"x\"]",
     ' {"a": 1} ', '{"a":1}\n', "NaN", '"\\u00e9t\\u00e9"', "-0", "1e400"],
)  # fmt: skip
def test_loads_is_json_loads(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))


def test_none_stays_none() -> None:
    assert loads(None) is None


@pytest.mark.parametrize("text", ["", "{", '{"a":1} x', "nul", "[1,]"])
def test_loads_refuses_what_json_refuses_in_its_words(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/services/T0/B0/secret", "https://hooks.example.com/…"),
        ("https://user:pw@example.com:8443/x?token=1", "https://example.com:8443/…"),
        ("http://[::1]:9/hook", "http://[::1]:9/…"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com?sig=abc", "https://example.com/…"),
    ],
)
def test_below_admin_a_url_shows_only_its_origin(url: str, shown: str) -> None:
    assert origin_only(url) == shown
    assert url_hidden(f"cannot reach {url}: refused", url) == f"cannot reach {shown}: refused"

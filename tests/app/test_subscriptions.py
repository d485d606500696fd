"""What a subscription shows to whom: a webhook URL is often a credential itself."""

from __future__ import annotations

import pytest

from flowledger.app.subscriptions import origin_only


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

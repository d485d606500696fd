"""api.hosting: the server's access lines hide credentials sent in a query, as a webhook
trigger stores them (``?access_token=`` was logged in clear, and logs are collected)."""

from __future__ import annotations

import time

from tests.api.conftest import Service
from tests.api.helpers import HOOK, push


def test_an_access_line_hides_a_credential_in_the_query(service: Service) -> None:
    # The service is shared: another test's requests (generated ones) may hold the word.
    before = len(service.output())
    with service.client("admin") as http:
        name = push(http, HOOK)
        url = f"/hooks/{name}/in?access_token=SECRET-1&x=visible&api_key=SECRET-2"
        answer = http.post(url, json={})
        assert answer.status_code in (200, 201, 202), answer.text
    deadline = time.monotonic() + 10
    while f"/hooks/{name}/in?" not in service.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = [x for x in service.output().splitlines() if f"/hooks/{name}/in?" in x]
    assert f"/hooks/{name}/in?access_token=***&x=visible&api_key=***" in line, line
    assert "SECRET" not in service.output()[before:]

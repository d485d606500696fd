"""The API's start holds ``version`` to a number or ``"latest"``: ``"1"`` (text) was
taken as version 1 while every other field is held to its JSON type (tour 25 L6)."""

from __future__ import annotations

from tests.api.conftest import Service
from tests.api.helpers import HELLO, error, push

REFUSAL = 'version: must be a version number (an integer) or "latest" (the pushed version), not '


def test_a_start_s_version_is_a_number_or_latest(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HELLO)
        url = f"/api/v1/workflows/{name}/executions"
        for sent, shown in (("1", '"1"'), ("one", '"one"'), (True, "true")):
            refused = error(http.post(url, json={"input": {"who": "A"}, "version": sent}), 422)
            assert refused["message"] == REFUSAL + shown, refused
        for sent in (1, "latest"):
            started = http.post(url, json={"input": {"who": "A"}, "version": sent})
            assert started.status_code == 201, started.text
            assert started.json()["workflowVersion"] == 1

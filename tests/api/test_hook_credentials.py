"""The review's request over HTTP (tour 20 F6): credentials in a webhook's query and
headers are neither shown to a viewer nor written to the access log."""

from __future__ import annotations

import time

from tests.api.conftest import Service
from tests.api.helpers import HOOK, push

SECRETS = ["K1SECRET", "S1SECRET", "OAUTHSECRET", "J1SECRET", "HMSECRET", "PWSECRET"]
QUERY = "key=K1SECRET&sig=S1SECRET&code=OAUTHSECRET&jwt=J1SECRET&hmac=HMSECRET&pwd=PWSECRET"


def test_a_viewer_and_the_access_log_see_no_credential_of_a_hook_request(
    service: Service,
) -> None:
    with service.client("admin") as http:
        name = push(http, HOOK)
        answer = http.post(
            f"/hooks/{name}/in?{QUERY}&country_code=FR",
            json={},
            headers={"X-Shopify-Hmac-Sha256": "SHOPIFYSECRET"},
        )
        assert answer.status_code == 202, answer.text
        execution_id = answer.json()["executionId"]
    with service.client("viewer") as http:
        doc = http.get(f"/api/v1/executions/{execution_id}").json()
    trigger = doc["trigger"]
    assert trigger["queryParams"] == {
        **dict.fromkeys(["key", "sig", "code", "jwt", "hmac", "pwd"], "***"),
        "country_code": "FR",
    }
    assert trigger["headers"]["x-shopify-hmac-sha256"] == "***"
    deadline = time.monotonic() + 10
    while f"/hooks/{name}/in?" not in service.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = [x for x in service.output().splitlines() if f"/hooks/{name}/in?" in x]
    assert "key=***&sig=***&code=***&jwt=***&hmac=***&pwd=***&country_code=FR" in line, line
    for secret in [*SECRETS, "SHOPIFYSECRET"]:
        assert secret not in service.output() and secret not in str(doc), secret

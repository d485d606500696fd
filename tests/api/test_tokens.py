"""`/tokens` through the real server (SQLite and PostgreSQL): an admin lists, creates and
revokes API tokens over HTTP, by the rules of `flowledger tokens` (the API had no route
for them: an operator of the service needed the database's command line)."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.api.conftest import Service
from tests.api.helpers import APPROVAL, error, push, settled, start, unique

pytestmark = pytest.mark.e2e
SSE = {"Accept": "text/event-stream"}


def _create(http: httpx.Client, name: str, **more: object) -> dict[str, object]:
    answer = http.post("/api/v1/tokens", json={"name": name, **more})
    assert answer.status_code == 201, answer.text
    assert answer.headers["Cache-Control"] == "no-store"  # the secret: no cache keeps it
    made: dict[str, object] = answer.json()
    return made


def test_an_admin_creates_lists_and_revokes_tokens(service: Service) -> None:
    name = unique("ci")
    with service.client("admin") as admin:
        made = _create(admin, name, role="operator", expiresIn="30d")
        assert set(made) == {"name", "role", "token", "expiresAt"}
        assert (made["name"], made["role"]) == (name, "operator")
        secret = str(made["token"])
        assert secret.startswith("flt_") and made["expiresAt"] is not None

        with service.client(token=secret) as mine:  # it works at once, with its role
            assert mine.get("/api/v1/executions").status_code == 200
            assert error(mine.get("/api/v1/tokens"), 403)["code"] == "forbidden"

        listed = admin.get("/api/v1/tokens")
        assert listed.status_code == 200, listed.text
        page = listed.json()
        [doc] = [d for d in page["items"] if d["name"] == name]
        assert doc["role"] == "operator" and doc["createdAt"] and doc["lastUsedAt"]
        assert (doc["expiresAt"], doc["revokedAt"], doc["expired"]) == (
            made["expiresAt"],
            None,
            False,
        )
        assert doc["createdBy"] == "api-token:t-admin"  # who called, as a start records it
        created = [d["createdAt"] for d in page["items"]]
        assert created == sorted(created, reverse=True)  # newest first
        # Never a secret, nor what is stored of one.
        for hidden in (secret, hashlib.sha256(secret.encode()).hexdigest()):
            assert hidden not in listed.text
        assert all("token" not in d and "secretHash" not in d for d in page["items"])

        revoked = admin.delete(f"/api/v1/tokens/{name}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["name"] == name and revoked.json()["revokedAt"]
        with service.client(token=secret) as mine:
            assert error(mine.get("/api/v1/executions"), 401)["code"] == "unauthenticated"
        again = admin.delete(f"/api/v1/tokens/{name}")  # changes nothing
        assert again.status_code == 200 and again.json() == revoked.json()
        missing = error(admin.delete(f"/api/v1/tokens/{unique('none')}"), 404)
        assert missing["message"].startswith("there is no token named")
        # The name is free again, as with `tokens revoke` then `tokens create`.
        assert _create(admin, name)["role"] == "viewer"


def test_the_token_list_is_paged_as_every_list(service: Service) -> None:
    """It was every token in one answer (nextCursor always null)."""
    with service.client("admin") as admin:
        names = [unique("paged") for _ in range(3)]
        for name in names:
            _create(admin, name)
        first = admin.get("/api/v1/tokens", params={"limit": 2}).json()
        assert [d["name"] for d in first["items"]] == names[::-1][:2]
        assert first["nextCursor"] is not None
        rest = admin.get("/api/v1/tokens", params={"limit": 2, "cursor": first["nextCursor"]})
        assert rest.status_code == 200, rest.text
        assert rest.json()["items"][0]["name"] == names[0]
        assert error(admin.get("/api/v1/tokens", params={"limit": 0}), 422)
        assert error(admin.get("/api/v1/tokens", params={"cursor": "x"}), 400)


def test_creating_a_token_keeps_the_command_lines_rules(service: Service) -> None:
    name = unique("dup")
    with service.client("admin") as admin:
        _create(admin, name)
        taken = error(admin.post("/api/v1/tokens", json={"name": name}), 409)
        assert taken["message"] == (
            f"a token named {name!r} exists; revoke it first or pick another name"
        )
        spaced = error(admin.post("/api/v1/tokens", json={"name": "my token"}), 422)
        assert spaced["details"]["field_path"] == ["name"]
        assert "no spaces" in spaced["message"] and "^" not in spaced["message"]
        for duration, said in (
            ("soon", "expiresIn: \"soon\" is not a duration; write it like '500ms'"),
            ("0s", "must be at least 1s, not 0ms"),
            (True, "not true"),
        ):
            bad = admin.post("/api/v1/tokens", json={"name": unique("d"), "expiresIn": duration})
            found = error(bad, 422)
            assert found["details"]["field_path"] == ["expiresIn"], found
            assert said in found["message"], found
        role = error(admin.post("/api/v1/tokens", json={"name": unique("r"), "role": "root"}), 422)
        assert role["details"]["field_path"] == ["role"]
        extra = error(admin.post("/api/v1/tokens", json={"name": unique("x"), "secret": "s"}), 422)
        assert extra["details"]["field_path"] == ["secret"]
        seconds = _create(admin, unique("s"), expiresIn=90)  # seconds, as --expires-in 90
        assert seconds["expiresAt"] is not None
    for role in ("viewer", "operator"):
        with service.client(role) as http:
            error(http.post("/api/v1/tokens", json={"name": unique("no")}), 403)
            error(http.delete("/api/v1/tokens/t-admin"), 403)


def test_an_admin_may_revoke_the_token_it_calls_with(service: Service) -> None:
    name = unique("self")
    with service.client("admin") as admin:
        secret = str(_create(admin, name, role="admin")["token"])
    with service.client(token=secret) as itself:
        answer = itself.delete(f"/api/v1/tokens/{name}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["revokedAt"]
        assert error(itself.get("/api/v1/tokens"), 401)["code"] == "unauthenticated"


def test_revoking_over_http_ends_the_tokens_open_stream(service: Service) -> None:
    name = unique("watch")
    with service.client("admin") as admin:
        secret = str(_create(admin, name)["token"])
        waiting = settled(admin, start(admin, push(admin, APPROVAL))["id"])
        url = f"/api/v1/executions/{waiting['id']}/events"
        with (
            service.client(token=secret) as mine,
            mine.stream("GET", url, headers=SSE) as stream,
        ):
            assert stream.status_code == 200
            lines = stream.iter_lines()
            seen = ""
            while not seen.startswith("data:") or "execution.awaiting_input" not in seen:
                seen = next(lines)  # the history, to its last event
            assert admin.delete(f"/api/v1/tokens/{name}").status_code == 200
            # The server ends it (httpx's 30 s read timeout would fail this instead).
            rest = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
        assert rest == []

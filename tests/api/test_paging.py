"""Cursor paging of executions: newest first, nothing skipped or repeated while others
insert, tamper-evident cursors (400)."""

from __future__ import annotations

import base64

from tests.api.conftest import Service
from tests.api.helpers import HELLO, error, push, start


def test_pages_are_stable_while_others_insert(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HELLO)
        made = [start(http, name, {"who": str(i)})["id"] for i in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"workflow": name, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            answer = http.get("/api/v1/executions", params=params).json()
            seen += [d["id"] for d in answer["items"]]
            start(http, name, {"who": "meanwhile"})  # newer: sorts before the cursor
            cursor = answer["nextCursor"]
            if cursor is None:
                break
    assert seen == list(reversed(made))


def test_forged_or_foreign_cursors_are_400(service: Service) -> None:
    with service.client("admin") as http:
        name = push(http, HELLO)
        for i in range(3):
            start(http, name, {"who": str(i)})
        cursor = http.get("/api/v1/executions", params={"workflow": name, "limit": 1}).json()[
            "nextCursor"
        ]
        assert cursor
        head, _, mac = cursor.partition(".")
        payload = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        edited = base64.urlsafe_b64encode(payload.replace(b'"i":"', b'"i":"0')).rstrip(b"=")
        for bad in (f"{edited.decode()}.{mac}", cursor[:-2] + "xx", "garbage", cursor + "."):
            found = error(
                http.get("/api/v1/executions", params={"workflow": name, "cursor": bad}), 400
            )
            assert found["code"] == "invalid_cursor"
        other = http.get("/api/v1/executions", params={"workflow": "other", "cursor": cursor})
        assert error(other, 400)["details"]["field_path"] == ["cursor"]

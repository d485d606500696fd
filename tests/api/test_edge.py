"""api.edge: a request body with a Content-Encoding other than identity is refused (415)
on every route that reads one, before anything reads it (tour 22C F5)."""

from __future__ import annotations

import gzip
import json

from tests.api.conftest import Service
from tests.api.helpers import APPROVAL, HOOK, error, push, settled, start

JSON = {"Content-Type": "application/json"}


def test_a_compressed_body_is_415_naming_content_encoding(service: Service) -> None:
    """A gzip body was answered 400 "not UTF-8 text (byte 0x8b …)", which blamed the
    charset; a plain body labelled gzip was taken (201). Nothing is decompressed."""
    with service.client("admin") as http:
        name = push(http, APPROVAL)
        hook = push(http, HOOK)
        waiting = settled(http, start(http, name)["id"])["id"]
        plain = b'{"input": {}}'
        cases = [
            (f"/api/v1/workflows/{name}/executions", gzip.compress(plain), "gzip", JSON),
            (f"/api/v1/workflows/{name}/executions", plain, "gzip", JSON),  # labelled only
            (f"/api/v1/workflows/{name}/executions", plain, "identity, br", JSON),
            (f"/api/v1/executions/{waiting}/cancel", b"{}", "deflate", JSON),
            ("/api/v1/workflows", b"name: x\nsteps: []\n", "GZIP", {"Content-Type": "application/yaml"}),
            ("/api/v1/job-runs", json.dumps({"name": "j", "workflows": []}).encode(), "zstd", JSON),
            (f"/hooks/{hook}/in", b"{}", "gzip", JSON),
        ]  # fmt: skip
        for url, body, coding, headers in cases:
            answer = http.post(url, content=body, headers={**headers, "Content-Encoding": coding})
            found = error(answer, 415)
            named = ", ".join(
                c.strip().lower() for c in coding.split(",") if c.strip() != "identity"
            )
            assert (found["code"], found["message"]) == (
                "unsupported_encoding",
                f"headers.Content-Encoding: {named} is not accepted; send the body "
                "uncompressed (identity)",
            ), url
            assert found["details"]["field_path"] == ["headers", "Content-Encoding"]
            assert answer.headers["Accept-Encoding"] == "identity"  # RFC 9110 §12.5.3
        assert settled(http, waiting)["runtimeStatus"] == "AwaitingUserInput"  # not cancelled
        listed = http.get("/api/v1/executions", params={"workflow": name}).json()["items"]
        assert [e["id"] for e in listed] == [waiting]
        assert http.get("/api/v1/executions", params={"workflow": hook}).json()["items"] == []
        # identity is no coding at all; a request without a body has nothing to decode.
        identity = {**JSON, "Content-Encoding": "identity"}
        url = f"/api/v1/workflows/{name}/executions"
        assert http.post(url, content=plain, headers=identity).status_code == 201
        read = http.get(f"/api/v1/executions/{waiting}", headers={"Content-Encoding": "gzip"})
        assert read.status_code == 200, read.text

"""sys.http_request against a real HTTP server on 127.0.0.1 (see tests/steps/http_server.py)."""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from flowledger.errors import StepError
from flowledger.steps.base import StepContext
from flowledger.steps.http_request import HTTP_REQUEST, HttpRequestOutput
from tests import tls
from tests.steps.http_server import serve

IDEMPOTENCY_KEY = "exec-1:call:se-1"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy configured in the environment must not sit in between.
    async with httpx.AsyncClient(trust_env=False, timeout=5, verify=tls.CONTEXT) as http:
        yield http


def _ctx(http: httpx.AsyncClient) -> StepContext:
    return StepContext(
        execution_id="exec-1",
        step_id="call",
        step_execution_id="se-1",
        attempt=1,
        idempotency_key=IDEMPOTENCY_KEY,
        loop={},
        started_at=datetime.now(UTC),
        http=http,
        logger=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )


async def call(http: httpx.AsyncClient, **raw: Any) -> HttpRequestOutput:
    """Validate ``raw`` like the runtime does, then run the handler."""
    data = HTTP_REQUEST.input_model.model_validate(raw)
    result = await HTTP_REQUEST.handler(data, _ctx(http))
    assert isinstance(result, HttpRequestOutput)
    return result


async def fails(http: httpx.AsyncClient, **raw: Any) -> StepError:
    with pytest.raises(StepError) as caught:
        await call(http, **raw)
    return caught.value


def test_declared_like_a_plugin() -> None:
    assert HTTP_REQUEST.name == "sys.http_request"
    assert HTTP_REQUEST.output_model is HttpRequestOutput
    schema = HTTP_REQUEST.output_json_schema()
    assert schema is not None
    assert set(schema["properties"]) == {"statusCode", "headers", "body", "bodyEncoding"}


async def test_get_json(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, url=f"{base}/json")
    assert out.statusCode == 200
    assert out.body == {"hello": "world", "unicode": "grüße ✓"}
    assert out.headers["content-type"] == "application/json"


async def test_post_json_is_sent_and_echoed(base: str, client: httpx.AsyncClient) -> None:
    payload = {"email": "a@example.com", "tags": ["x", "ü"], "n": 1.5, "ok": True, "none": None}
    out = await call(
        client,
        method="post",
        url=f"{base}/echo",
        json=payload,
        query={"page": 2, "flag": True, "ids": [1, 2]},
    )
    assert out.body["method"] == "POST"
    assert out.body["body"] == payload
    assert out.body["headers"]["content-type"] == "application/json"
    assert out.body["query"] == {"page": "2", "flag": "true", "ids": ["1", "2"]}


async def test_query_adds_to_the_urls_own_query(base: str, client: httpx.AsyncClient) -> None:
    """httpx's ``params=`` replaced the URL's query: ``?api-version=2`` was dropped unsaid.
    The URL's own query string is kept byte for byte (a pre-signed URL's signature covers
    it: re-encoding ``%20`` as ``+`` broke it)."""
    out = await call(client, url=f"{base}/echo?api-version=2&sig=a%20b*", query={"q": "a b"})
    assert out.body["query"] == {"api-version": "2", "sig": "a b*", "q": "a b"}
    assert out.body["rawQuery"] == "api-version=2&sig=a%20b*&q=a+b"
    with pytest.raises(StepError, match=r"query names 'sig', which the url's own query"):
        await call(client, url=f"{base}/echo?sig=1", query={"sig": 2})


async def test_string_body_is_sent_verbatim(base: str, client: httpx.AsyncClient) -> None:
    out = await call(
        client, method="PUT", url=f"{base}/echo", body="a=1&b=2", headers={"Content-Type": "x/y"}
    )
    assert out.body["method"] == "PUT"
    assert out.body["body"] == "a=1&b=2"


async def test_text_response(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, url=f"{base}/text")
    assert out.body == "hello, world"


async def test_empty_204_has_null_body(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, method="DELETE", url=f"{base}/empty")
    assert out.statusCode == 204
    assert out.body is None


async def test_plus_json_content_type_is_parsed(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, url=f"{base}/problem")
    assert out.body == {"title": "ok"}


async def test_invalid_json_keeps_the_text(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, url=f"{base}/badjson")
    assert out.statusCode == 200
    assert out.body == '{"not": json'


async def test_404_fails_and_is_not_retryable(base: str, client: httpx.AsyncClient) -> None:
    error = await fails(client, url=f"{base}/status/404?token=s3cret")
    assert error.message == (
        f"GET {base}/status/404 answered 404 Not Found (not retried: a 4xx other than 408, 425, 429)"
    )
    assert error.retryable is False
    details: Any = error.details
    assert details["statusCode"] == 404
    assert details["headers"]["content-type"] == "application/json"
    body = details["body"]
    assert isinstance(body, str)  # the 4 KB answer is cut to 2 KiB of text
    assert body.startswith('{"error": "status 404"')
    assert len(body) == 2049
    assert "s3cret" not in error.message  # the query string may hold credentials


async def test_503_fails_and_is_retryable(base: str, client: httpx.AsyncClient) -> None:
    error = await fails(client, method="POST", url=f"{base}/status/503", json={})
    assert error.message == f"POST {base}/status/503 answered 503 Service Unavailable"
    assert error.retryable is True


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (422, False), (408, True), (425, True), (429, True), (500, True)],
)
async def test_which_statuses_are_retryable(
    base: str, client: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    error = await fails(client, url=f"{base}/status/{status}")
    assert error.retryable is retryable


async def test_ok_status_accepts_404(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, url=f"{base}/status/404", ok_status=[404])
    assert out.statusCode == 404
    assert out.body["error"] == "status 404"


async def test_idempotency_key_is_sent(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, method="POST", url=f"{base}/echo", json={"a": 1})
    assert out.body["headers"]["idempotency-key"] == IDEMPOTENCY_KEY


async def test_user_headers_override_the_idempotency_key(
    base: str, client: httpx.AsyncClient
) -> None:
    headers = {"idempotency-key": "mine", "X-Api-Key": "k1"}
    out = await call(client, url=f"{base}/echo", headers=headers)
    assert out.body["headers"]["idempotency-key"] == "mine"
    assert out.body["headers"]["x-api-key"] == "k1"


async def test_request_headers_never_reach_the_error(base: str, client: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Bearer top-secret-token"}
    error = await fails(client, url=f"{base}/status/500", headers=headers)
    assert "top-secret-token" not in f"{error.message} {error.details}"


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_response_over_the_limit_is_refused(
    base: str, client: httpx.AsyncClient, chunked: str
) -> None:
    url = f"{base}/big?n=300000&chunked={chunked}"
    error = await fails(client, url=url, max_response_bytes=100_000)
    assert "more than 100,000 bytes" in error.message
    assert error.retryable is False
    out = await call(client, url=url, max_response_bytes=300_000)
    assert out.body == "x" * 300_000


async def test_slow_server_times_out(base: str, client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    error = await fails(client, url=f"{base}/slow?s=5", timeout="200ms")
    assert time.monotonic() - started < 4  # well under the server's 5 s: the timeout cut it
    assert error.retryable is True
    assert error.message == f"GET {base}/slow did not finish within the 0.2s timeout"


async def test_the_timeout_bounds_the_whole_exchange(base: str, client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    error = await fails(client, url=f"{base}/trickle", timeout=0.3)
    assert time.monotonic() - started < 4  # the whole trickle takes 5 s: the timeout cut it
    assert error.message == f"GET {base}/trickle did not finish within the 0.3s timeout"


async def test_without_a_timeout_the_exchange_still_has_a_bound(
    base: str, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``timeout``: each read had 30 s, so a server trickling a byte at a time held
    the step (and the worker's slot) for as long as it liked."""
    monkeypatch.setattr("flowledger.steps.http_request.DEFAULT_EXCHANGE_TIMEOUT", 0.3)
    started = time.monotonic()
    error = await fails(client, url=f"{base}/trickle")
    assert time.monotonic() - started < 4  # the whole trickle takes 5 s
    assert error.message == (
        f"GET {base}/trickle did not finish within the default timeout "
        "(0.3s for the exchange, 30s for each read)"
    )


async def test_json_bodies_are_kept_exactly_or_as_text(
    base: str, client: httpx.AsyncClient
) -> None:
    """1e999 became null without a word; a byte order mark made JSON come back as text;
    ``json: null`` sent no body at all."""
    from urllib.parse import quote

    def raw(text: str) -> str:
        return f"{base}/raw?text={quote(text)}"

    huge = await call(client, url=raw('{"x": 1e999, "y": 1}'))
    assert huge.body == '{"x": 1e999, "y": 1}'  # the text, not a changed value
    small = await call(client, url=raw('{"x": 1e99}'))
    assert small.body == {"x": 1e99}
    bom = await call(client, url=raw(chr(0xFEFF) + '{"a": 1}'))
    assert bom.body == {"a": 1}
    sent = await call(client, method="PUT", url=f"{base}/echo", json=None)
    assert sent.body["body"] is None and sent.body["headers"]["content-type"] == "application/json"
    assert sent.body["headers"]["content-length"] == "4"  # null


async def test_a_redirect_to_another_scheme_is_not_retried(
    base: str, client: httpx.AsyncClient
) -> None:
    error = await fails(client, url=f"{base}/redirect-to?url=file:///etc/passwd")
    assert error.retryable is False and "file" in error.message


async def test_connection_refused_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await fails(client, url=f"http://127.0.0.1:{port}/x", timeout=2)
    assert error.retryable is True
    assert error.message.startswith(f"GET http://127.0.0.1:{port}/x failed: ")


async def test_redirects_are_followed_up_to_five(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, url=f"{base}/redirect?n=5")
    assert out.body["hello"] == "world"
    error = await fails(client, url=f"{base}/redirect?n=6")
    assert error.message == f"GET {base}/redirect was redirected more than 5 times"
    assert error.retryable is False


async def test_redirects_can_be_left_alone(base: str, client: httpx.AsyncClient) -> None:
    error = await fails(client, url=f"{base}/redirect?n=1", follow_redirects=False)
    details: Any = error.details
    assert details["statusCode"] == 302
    out = await call(client, url=f"{base}/redirect?n=1", follow_redirects=False, ok_status=[302])
    assert out.headers["location"] == "/json"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"url": "file:///etc/passwd"}, "http:// or https://"),
        ({"url": "gopher://example.com/"}, "http:// or https://"),
        ({"url": "example.com/a"}, "http:// or https://"),
        ({"url": "http://x", "json": {}, "body": "a"}, "either json or body"),
        ({"url": "http://x", "method": "TRACE"}, "method"),
        ({"url": "http://x", "timeout": "ten"}, "not a duration"),
        ({"url": "http://x", "timeout": 0}, "greater than 0"),
        ({"url": "http://x", "headers": {"A": "b\r\nEvil: 1"}}, "line breaks"),
        ({"url": "http://x", "headers": {"A": "Bearer tøken"}}, "must be ASCII"),
        ({"url": "http://x", "save_as": "file"}, "save_as"),
    ],
)
def test_input_validation_refuses(raw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HTTP_REQUEST.input_model.model_validate(raw)
    assert needle in str(caught.value)


def test_input_normalises_method_and_timeout() -> None:
    data: Any = HTTP_REQUEST.input_model.model_validate(
        {"url": "https://x.example/a", "method": "patch", "timeout": "2m"}
    )
    assert (data.method, data.timeout) == ("PATCH", 120.0)


@pytest.mark.parametrize(
    ("content_type", "payload", "body", "encoding"),
    [
        # Not text, not UTF-8: every byte kept, as base64.
        ("application/octet-stream", bytes(range(256)), "AAECAwQF", "base64"),
        ("image/png", b"\x89PNG\r\n\x1a\n", "iVBORw0KGgo=", "base64"),
        ("", b"\xff\xfe", "//4=", "base64"),
        # Not a text type, but UTF-8 all the same: text.
        ("application/octet-stream", "grüße".encode(), "grüße", None),
        # A text type keeps text, a stray invalid byte replaced.
        ("text/html", b"caf\xe9", "caf\ufffd", None),
        ("application/xml", b"<a/>", "<a/>", None),
    ],
)
async def test_bytes_that_are_not_text_are_kept_whole_as_base64(
    base: str,
    client: httpx.AsyncClient,
    content_type: str,
    payload: bytes,
    body: str,
    encoding: str | None,
) -> None:
    url = f"{base}/bytes?hex={payload.hex()}&type={content_type}"
    out = await call(client, url=url)
    assert out.bodyEncoding == encoding
    assert isinstance(out.body, str) and out.body.startswith(body)
    if encoding == "base64":
        assert base64.b64decode(out.body) == payload


async def test_repeated_set_cookie_headers_stay_apart(base: str, client: httpx.AsyncClient) -> None:
    out = await call(client, url=f"{base}/cookies")
    # A cookie's date holds a comma: a comma join could not be split again.
    assert out.headers["set-cookie"].split("\n") == [
        "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
        "b=2; Path=/",
    ]
    assert out.headers["vary"] == "Accept, Cookie"  # other headers: RFC 9110's comma list

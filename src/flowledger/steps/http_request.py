"""The built-in ``sys.http_request`` step: one HTTP call through the engine's shared client.

Success is a 2xx answer (or a status listed in ``ok_status``); anything else is a
:class:`StepError` whose ``retryable`` flag says whether another attempt may help.
Request headers are never echoed into messages or logs: they often carry secrets.
With ``save_as: artifact`` a successful answer's body is saved as a file (an
artifact of the execution) and the output's ``body`` is that artifact's description.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import AsyncIterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from flowledger.codec import looks_like_credential
from flowledger.durations import parse_duration
from flowledger.errors import StepError
from flowledger.numbers import NumbersNotBooleans
from flowledger.steps.base import StepContext, StepType, step_type
from flowledger.steps.exchange import whole_exchange
from flowledger.timeutil import retry_after
from flowledger.traceparent import step_traceparent

if TYPE_CHECKING:  # httpx is imported where used: it costs a cold start ~100 ms
    import httpx

__all__ = ["HTTP_REQUEST", "STEP_TYPES", "HttpRequestInput", "HttpRequestOutput"]

MAX_REDIRECTS = 5
#: ``max_response_bytes`` when not given: a body kept in the output is held in memory and
#: stored in the database; one saved as an artifact streams to disk.
OUTPUT_BODY_LIMIT = 10 * 1024 * 1024
ARTIFACT_BODY_LIMIT = 1024 * 1024 * 1024
DETAIL_BODY_CHARS = 2048
#: Seconds the whole exchange may take when the step gives no ``timeout``: the client's
#: own limits time each read, and a server trickling a byte at a time never trips them.
DEFAULT_EXCHANGE_TIMEOUT = 300.0
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_MAY_OVERFLOW = re.compile(r"[eE]\+?\d{3}|\d{309}")
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
#: Media types read as text, a stray invalid byte replaced (an HTML page, a CSV).
_TEXT_TYPE = re.compile(
    r"^(?:text/.*|application/(?:[\w.+-]+\+)?(?:json|xml|yaml)"
    r"|application/(?:javascript|ecmascript|x-www-form-urlencoded|x-yaml|x-ndjson|graphql))$"
)
_Scalar = str | int | float | bool


def _seconds(value: Any) -> Any:
    """Accept ``30``, ``2.5``, ``"500ms"``, ``"30s"``, ``"2m"`` or ISO-8601 ``"PT30S"``."""
    if value is None or isinstance(value, bool):
        return value  # pydantic names the wrong type for a bool
    return parse_duration(value).total_seconds()


class HttpRequestInput(NumbersNotBooleans):
    """Input of ``sys.http_request``; ``json`` and ``body`` are mutually exclusive."""

    # Headers and URLs may hold rendered secrets: keep input values out of error text.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        "GET", description="The HTTP method (any case)."
    )
    url: str = Field(description="An http:// or https:// URL; its own query string is kept.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    query: dict[str, _Scalar | list[_Scalar]] = Field(
        default_factory=dict,
        description="Query parameters added after the URL's own (a list repeats the name).",
    )
    json_: Any = Field(
        default=None,
        alias="json",
        description="A JSON body (Content-Type application/json); not with `body`.",
    )
    body: str | None = Field(None, description="A text body; not with `json`.")
    #: None: DEFAULT_EXCHANGE_TIMEOUT (5 minutes), each read also within 30 s.
    timeout: Annotated[
        float | None,
        BeforeValidator(_seconds),
        Field(
            gt=0,
            description="Seconds (or a duration: 30s, 2m) for the whole exchange: connect, "
            "send, every redirect, the whole body; default 5 minutes.",
        ),
    ] = None
    ok_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="Statuses that succeed besides 2xx (404: a miss)."
    )
    #: None: OUTPUT_BODY_LIMIT, or ARTIFACT_BODY_LIMIT with ``save_as: artifact``.
    max_response_bytes: int | None = Field(
        default=None,
        ge=0,
        description="The most bytes of (decompressed) body taken: 10 MiB by default, 1 GiB "
        "with `save_as: artifact`.",
    )
    follow_redirects: bool = Field(True, description="Follow up to 5 redirects.")
    save_as: Literal["artifact"] | None = Field(
        None,
        description="`artifact`: keep the body as a file of the execution instead of in the "
        "output (large downloads); `body` then describes the file.",
    )
    artifact_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The saved file's name; default: the URL's last path segment.",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        import httpx

        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"url is not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https"):
            scheme = f"{url.scheme}://" if url.scheme else "no scheme"
            raise ValueError(f"url must start with http:// or https:// (it has {scheme})")
        if not url.host:
            raise ValueError("url has no host name")
        return value

    @field_validator("headers")
    @classmethod
    def _no_line_breaks(cls, value: dict[str, str]) -> dict[str, str]:
        # A line break would smuggle in a header of its own (header injection).
        for name, text in value.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if "\r" in text or "\n" in text:
                raise ValueError(f"the value of header {name!r} must not contain line breaks")
            if not text.isascii():  # HTTP sends header values as ASCII (no retry makes it)
                raise ValueError(
                    f"the value of header {name!r} must be ASCII; percent- or "
                    "base64-encode other characters"
                )
        return value

    @model_validator(mode="after")
    def _json_or_body(self) -> HttpRequestInput:
        if "json_" in self.model_fields_set and self.body is not None:
            raise ValueError("give either json or body, not both")
        return self


class HttpRequestOutput(BaseModel):
    """What the step stores: ``body`` is parsed JSON for JSON answers, else text or None.
    Bytes of a type that is not text (an image, a PDF) and that are not UTF-8 are kept
    whole as base64, and ``bodyEncoding`` says so: ``"base64"``, else null."""

    statusCode: int = Field(description="The answer's HTTP status.")
    headers: dict[str, str] = Field(
        description="The answer's headers, names in lower case; a repeated one comma-joined "
        "(Set-Cookie: one per line)."
    )
    body: Any = Field(
        None,
        description="Parsed JSON for a JSON answer, text for a text one, else text when "
        "UTF-8 or base64 (see `bodyEncoding`); with `save_as: artifact`, the file.",
    )
    bodyEncoding: Literal["base64"] | None = Field(
        None, description="`base64` when `body` holds the bytes as base64, else null."
    )


def _with_query(url: httpx.URL, query: Mapping[str, Any]) -> httpx.URL:
    """``url`` with ``query`` added after its own query string, which is kept byte for
    byte (a pre-signed URL's signature covers it: re-encoding ``%20`` as ``+`` broke it).
    httpx's ``params=`` replaced the URL's query, and dropped ``?api-version=…`` unsaid.
    A name in both is refused: which one the receiver reads is its own choice."""
    import httpx

    if not query:
        return url
    both = sorted(set(url.params.keys()) & set(query))
    if both:
        raise StepError(
            f"query names {', '.join(map(repr, both))}, which the url's own query string "
            "has too; give each parameter in one place",
            retryable=False,
            code="input",
        )
    added = str(httpx.QueryParams(query)).encode("ascii")
    return url.copy_with(query=url.query + b"&" + added if url.query else added)


async def _http_request(data: HttpRequestInput, ctx: StepContext) -> HttpRequestOutput:
    """Send one HTTP request; succeed on 2xx or a status listed in ``ok_status``."""
    import httpx

    headers = dict(data.headers)
    if not any(name.lower() == "idempotency-key" for name in headers):
        headers["Idempotency-Key"] = ctx.idempotency_key  # lets the server drop a repeat
    traceparent = step_traceparent(ctx.step_execution_id, ctx.attempt)  # None: tracing off
    if traceparent is not None and not any(name.lower() == "traceparent" for name in headers):
        headers["traceparent"] = traceparent
    content = data.body
    if "json_" in data.model_fields_set and data.json_ is None:
        # ``json: null`` is a JSON value; httpx reads json=None as "no JSON body".
        content = "null"
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    url = _with_query(httpx.URL(data.url), data.query)
    request = ctx.http.build_request(
        data.method,
        url,
        headers=headers,
        json=data.json_ if "json_" in data.model_fields_set else None,
        content=content,
        timeout=data.timeout if data.timeout is not None else httpx.USE_CLIENT_DEFAULT,
    )
    where = f"{data.method} {_shown(request.url)}"
    try:
        deadline = data.timeout if data.timeout is not None else DEFAULT_EXCHANGE_TIMEOUT
        async with whole_exchange(deadline):
            secret = _secret_headers(ctx.definition_input)
            secret_body = _secret_body(ctx.definition_input)
            response = await _exchange(ctx.http, request, data, where, secret, secret_body)
            try:
                status = response.status_code
                response_headers = _headers(response)
                content_type = response_headers.get("content-type", "")
                ok = 200 <= status < 300 or status in data.ok_status
                if ok and data.save_as == "artifact":
                    saved = await _save(ctx, data, response, where, content_type)
                    return HttpRequestOutput(
                        statusCode=status, headers=response_headers, body=saved
                    )
                raw = await _read(response, _limit(data, to_artifact=False), where)
            finally:
                await response.aclose()
    except httpx.TimeoutException:  # whole_exchange's deadline, or one of httpx's own
        limit = f"{data.timeout:g}s" if data.timeout is not None else "default"
        message = f"{where} did not finish within the {limit} timeout"
        if data.timeout is None:
            message += f" ({DEFAULT_EXCHANGE_TIMEOUT:g}s for the exchange, 30s for each read)"
        raise StepError(message, retryable=True, code="http.timeout") from None
    except httpx.TransportError as exc:
        if getattr(exc, "refused_by_policy", False):  # the same URL is refused again: no retry
            raise StepError(f"{where}: {exc}", retryable=False, code="http.refused") from None
        if isinstance(exc, httpx.UnsupportedProtocol):  # a redirect to file://: always so
            raise StepError(
                f"{where} failed: {exc}", retryable=False, code="http.redirect"
            ) from None
        cause = str(exc) or type(exc).__name__
        raise StepError(
            f"{where} failed: {cause}", retryable=True, code="http.connection"
        ) from None
    except httpx.HTTPError as exc:  # e.g. a body that does not decompress: trying again won't help
        raise StepError(f"{where} failed: {exc}", retryable=False, code="http.response") from None
    ctx.logger.debug("%s answered %s (%d bytes)", where, status, len(raw))
    text, body, encoding = _body(raw, response.charset_encoding, content_type)
    if ok:
        return HttpRequestOutput(
            statusCode=status, headers=response_headers, body=body, bodyEncoding=encoding
        )
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    if text is not None and len(text) > DETAIL_BODY_CHARS:
        body = text[:DETAIL_BODY_CHARS] + "…"
    retryable = status in _RETRYABLE_STATUS or status >= 500
    # Said, since a step's retry policy seems to be ignored otherwise: the same request
    # would be refused the same way.
    final = "" if retryable or status < 400 else " (not retried: a 4xx other than 408, 425, 429)"
    raise StepError(
        f"{where} answered {status} {reason}".rstrip() + final,
        retryable=retryable,
        details={"statusCode": status, "headers": response_headers, "body": body},
        retry_after=retry_after(response_headers) if retryable else None,
        code=status_code(status),
    )


def status_code(status: int) -> str:
    """The failure code of an answer with ``status``: ``http.429`` (too many requests,
    apart: it asks to slow down), else its class, ``http.5xx``, ``http.4xx`` or ``http.3xx``."""
    if status == 429:
        return "http.429"
    return f"http.{status // 100}xx"


#: Headers a hop to another origin keeps even when the definition builds every header
#: from a template that reads secrets (their names are then unknown before the run).
_PLAIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "content-type", "content-length", "user-agent",
     "idempotency-key", "traceparent", "host"}
)  # fmt: skip
#: ``_secret_headers``'s answer when any header may hold a secret.
_ALL_HEADERS = frozenset({"*"})


def _secret_headers(definition_input: Any) -> frozenset[str]:
    """Lower-cased names of the headers the definition fills from ``secrets`` (all of
    them when ``headers`` is one template that reads secrets)."""
    headers = definition_input.get("headers") if isinstance(definition_input, dict) else None
    if isinstance(headers, str) and "secrets" in headers:
        return _ALL_HEADERS
    if not isinstance(headers, dict):
        return frozenset()
    return frozenset(
        str(name).lower()
        for name, value in headers.items()
        if isinstance(value, str) and "secrets" in value
    )


def _secret_body(definition_input: Any) -> bool:
    """The definition fills the request's body (``json`` or ``body``) from ``secrets``."""
    if not isinstance(definition_input, dict):
        return False
    return "secrets" in json.dumps(
        [definition_input.get("json"), definition_input.get("body")], default=str
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host.lower().rstrip("."), url.port)


def _is_credential(name: str, secret: frozenset[str]) -> bool:
    lowered = name.lower()
    if secret is _ALL_HEADERS:
        return lowered not in _PLAIN_HEADERS
    return lowered in secret or looks_like_credential(lowered)


def _drop_credentials(request: httpx.Request, secret: frozenset[str]) -> None:
    """A hop to another origin carries no credential: the headers the workflow filled
    from secrets, Authorization, Cookie, and any header named like a key or token."""
    for name in [name for name in request.headers if _is_credential(name, secret)]:
        del request.headers[name]


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    data: HttpRequestInput,
    where: str,
    secret: frozenset[str] = frozenset(),
    secret_body: bool = False,
) -> httpx.Response:
    """Send and follow at most MAX_REDIRECTS redirects: the last answer, its body unread."""
    origin = _origin(request.url)  # before the transport rewrites the host to an address
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        if not (data.follow_redirects and response.next_request is not None):
            break
        await response.aclose()
        request = response.next_request
        if _origin(request.url) != origin:
            _drop_credentials(request, secret)
            if secret_body and request.method not in ("GET", "HEAD"):
                # A 307/308 sends the body again: one made from secrets stays with the
                # origin the definition names, as its secret headers do.
                raise StepError(
                    f"{where} was redirected ({response.status_code}) to another origin, "
                    f"{_shown(request.url)}, which would be sent a body made from secrets; "
                    "not followed",
                    retryable=False,
                    code="http.redirect",
                )
    else:
        await response.aclose()
        message = f"{where} was redirected more than {MAX_REDIRECTS} times"
        raise StepError(message, retryable=False, code="http.redirect")
    return response


def _limit(data: HttpRequestInput, *, to_artifact: bool) -> int:
    if data.max_response_bytes is not None:
        return data.max_response_bytes
    return ARTIFACT_BODY_LIMIT if to_artifact else OUTPUT_BODY_LIMIT


def _headers(response: httpx.Response) -> dict[str, str]:
    """The answer's headers, a repeated one comma-joined (RFC 9110 §5.3) except
    ``Set-Cookie``, whose dates hold commas: its values are joined by a line break."""
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        if name in headers:
            joiner = "\n" if name == "set-cookie" else ", "
            headers[name] = f"{headers[name]}{joiner}{value}"
        else:
            headers[name] = value
    return headers


async def _bounded(response: httpx.Response, limit: int, where: str) -> AsyncIterator[bytes]:
    """The body's chunks, decompressed (a gzip bomb counts in full); a StepError once
    they pass ``limit`` bytes."""
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(where, limit)
        yield chunk


async def _read(response: httpx.Response, limit: int, where: str) -> bytes:
    return b"".join([chunk async for chunk in _bounded(response, limit, where)])


async def _save(
    ctx: StepContext,
    data: HttpRequestInput,
    response: httpx.Response,
    where: str,
    content_type: str,
) -> dict[str, Any]:
    """Stream the body into an artifact; its description becomes the output's body."""
    path = response.request.url.path
    name = data.artifact_name or path.rstrip("/").rsplit("/", 1)[-1] or f"{ctx.step_id}.body"
    chunks = _bounded(response, _limit(data, to_artifact=True), where)
    return await ctx.artifacts.save_stream(name, chunks, content_type or "application/octet-stream")


def _too_large(where: str, limit: int) -> StepError:
    message = f"{where} answered with more than {limit:,} bytes; raise max_response_bytes"
    return StepError(message, retryable=False, code="http.response")


def _body(
    raw: bytes, charset: str | None, content_type: str
) -> tuple[str | None, Any, Literal["base64"] | None]:
    """``(text, body, encoding)``: the decoded text and the parsed JSON, or the text when
    not JSON; bytes of a type that is not text and do not decode: base64."""
    if not raw:
        return None, None, None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not _TEXT_TYPE.match(media_type):
        try:  # an image, a PDF, octet-stream: text only when it is text
            text = raw.decode(charset or "utf-8")
        except (LookupError, UnicodeDecodeError):
            return None, base64.b64encode(raw).decode("ascii"), "base64"
        return text, text, None
    try:
        text = raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        text = raw.decode("utf-8", errors="replace")
    if not _JSON_TYPE.match(media_type):
        return text, text, None
    try:
        # A byte order mark may start JSON text (RFC 8259 §8.1): parsers may ignore it.
        parsed = json.loads(text.removeprefix("\ufeff"), parse_constant=_no_constant)
        # Only a long exponent or 309 digits can overflow: most bodies are not walked.
        return text, _finite(parsed) if _MAY_OVERFLOW.search(text) else parsed, None
    except (ValueError, RecursionError):  # invalid or absurdly deep JSON: keep the text
        return text, text, None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity cannot be stored as JSON


def _finite(value: Any) -> Any:
    """``value``; ValueError when a number in it overflowed to infinity (``1e999``),
    which stored JSON would turn into null: the text is kept instead."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("a number too large for JSON")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _shown(url: httpx.URL) -> str:
    """The URL without user info or query: both often carry credentials."""
    host = f"[{url.host}]" if ":" in url.host else url.host  # IPv6
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{host}{port}{url.path}"


HTTP_REQUEST: StepType = step_type(
    "sys.http_request",
    description="Call an HTTP endpoint and keep its answer.",
    # Where a credential goes; never save_as/artifact_name (stored as names).
    secret_fields=("url", "headers", "query", "body", "json"),
)(_http_request)
#: What the registry takes from this module the first time a definition names it
#: (steps.registry.LAZY_BUILTINS).
STEP_TYPES: tuple[StepType, ...] = (HTTP_REQUEST,)

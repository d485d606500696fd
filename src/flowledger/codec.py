"""JSON in and out of the database, with secret values redacted on the way in.

Redaction is the second net: validation already keeps ``secrets.NAME`` out of every
field but the few that send it (``sys.http_request``'s url, headers, query and body,
fields a custom step type declares secret), and those are stored with the reference
in place of the value. What can still carry a value is what comes back (a server
echoing a token) or an error message quoting it. A :class:`Codec` is built from the
secret *names* an execution's definition declares (:meth:`Codec.for_names`), so every
process that writes for the execution redacts the same values, whatever it rendered.
Each value is searched in the spellings it can take inside stored text: raw, JSON
escaped (ASCII or not), URL-encoded (``quote`` and ``quote_plus``), hex (either case)
and base64 (standard and URL-safe, at each of the three byte alignments). Then what is
left of one, raw or JSON-escaped: any run of half of it or more (12 characters at least,
not digits alone) of its consecutive characters (flowledger.secretparts says how, why
half, and what that costs).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import quote, quote_plus, urlsplit

from flowledger.config import read_secret
from flowledger.jsonvalues import non_finite
from flowledger.secretparts import MIN_RUN, SecretParts

REDACTED = "***"
#: One encoder for every column: ``json.dumps`` with these options builds a new one per call.
_ENCODE = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False
).encode
# The C encoder that ``_ENCODE`` builds per call, called directly (the encoder's two Python
# frames cost about as much as encoding a step's small input); None without the C module.
_C_ENCODER: Callable[..., Callable[[Any, int], Iterable[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_C_STRINGS = json.encoder.encode_basestring
# One of them, built once: with no circular-reference memo (``markers`` None) it keeps no
# state between calls, so every thread may share it. A value that contains itself then
# ends in RecursionError instead of ValueError.
_C_ENCODE = (
    None
    if _C_ENCODER is None
    else _C_ENCODER(None, str, _C_STRINGS, None, ":", ",", False, False, False)
)
#: Values shorter than this are not searched inside base64 text (too many false hits).
_MIN_BASE64_CHARS = 6


#: What a stored trigger or a log line keeps of a header or query parameter that looks
#: like a credential: that it was sent, never its value (every viewer reads triggers).
HIDDEN = "***"
#: Headers that carry credentials whatever their values say.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: Names (of headers, query parameters) that look like they carry one: X-Api-Key,
#: X-Gitlab-Token, X-Hub-Signature-256, X-Shopify-Hmac-Sha256, ?access_token=, ?jwt=.
CREDENTIAL_NAME = re.compile(
    r"api[-_]?key|token|secret|passw|auth|session|credential|signature|hmac|jwt|cookie"
)
#: Words too common inside other names to look for anywhere, credentials as a word of
#: the name: ?key= (a Google API key), X-Functions-Key, ?sig= (an Azure SAS signature),
#: ?user_pwd=; and as the whole name only: ?code= (an Azure Functions key, an OAuth
#: code; ?country_code= is none), ?pass=.
CREDENTIAL_WORDS = frozenset({"key", "sig", "pwd"})
CREDENTIAL_WHOLE_NAMES = frozenset({"code", "pass"})
#: Named like one, but none: the key that makes a webhook delivery happen once.
NOT_CREDENTIALS = frozenset({"idempotency-key", "x-idempotency-key"})
#: A name's words: split at what is not a letter or digit, and before a capital (apiKey).
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def looks_like_credential(name: str) -> bool:
    lowered = name.lower()
    if lowered in NOT_CREDENTIALS:
        return False
    if lowered in CREDENTIAL_HEADERS or lowered in CREDENTIAL_WHOLE_NAMES:
        return True
    if CREDENTIAL_NAME.search(lowered):
        return True
    return any(word.lower() in CREDENTIAL_WORDS for word in _WORDS.findall(name))


def origin_only(url: str) -> str:
    """``url`` with its path, query and user info cut: ``https://hooks.example.com/…``.
    How a webhook URL is shown below admin and in logs: it is often a credential itself
    (a chat service's incoming hook)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def url_hidden(text: str, url: str) -> str:
    """``text`` (an error message) with each copy of ``url`` as :func:`origin_only` shows it."""
    return text.replace(url, origin_only(url))


def placeholder(name: str) -> str:
    """What stored documents hold where the secret ``name`` was."""
    return f"***secrets.{name}***"


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters that encode ``raw`` whatever surrounds it, for each of the
    three byte offsets it may start at inside a longer encoded text."""
    cores = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
            first = -(-offset * 8 // 6)  # first character whose bits are all the value's
            last = ((offset + len(raw)) * 8) // 6  # characters wholly inside the value
            core = text[first:last]
            if len(core) >= _MIN_BASE64_CHARS:
                cores.add(core)
    return cores


def spellings(value: str) -> set[str]:
    """Every way ``value`` may appear inside stored JSON text."""
    found = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    if len(value) >= _MIN_BASE64_CHARS:  # a server may echo it upper- or lower-cased
        found |= {value.upper(), value.lower()}
    # Query and form encodings, and a URL path's as httpx writes it (only the unsafe
    # characters escaped: a space as %20, ``+&=;`` and the other sub-delimiters kept).
    path = quote(value, safe="!$&'()*+,;=:@/")
    for text in (quote(value, safe=""), quote_plus(value, safe=""), quote(value), path):
        found.add(text)
        found.add(text.lower())  # %c3%a4 as well as %C3%A4
    raw = value.encode("utf-8", "surrogatepass")  # a lone surrogate is kept as it is
    if len(value) >= _MIN_BASE64_CHARS:  # a short value's hex is a common hex run
        found |= {raw.hex(), raw.hex().upper()}
    found |= _base64_cores(raw)
    return {text for text in found if text}


def part_spellings(value: str) -> set[str]:
    """The spellings whose long runs are redacted (secretparts): raw; as stored JSON
    escapes it (only ``"``, ``\\`` and control characters: the ASCII escaping would make
    ``\\u00f6rd`` of a secret's ``örd``, eight characters for three); its hex in either
    case, and its base64 at each byte alignment, standard and URL-safe (a server echoing
    the first half of an encoded ``Authorization: Basic …`` header)."""
    found = {value, json.dumps(value, ensure_ascii=False)[1:-1]}
    raw = value.encode("utf-8", "surrogatepass")
    if len(value) >= _MIN_BASE64_CHARS:
        found |= {raw.hex(), raw.hex().upper()}
    found |= _base64_cores(raw)
    return {text for text in found if len(text) > MIN_RUN}


class Codec:
    """Serializes JSON columns; every known secret value becomes its placeholder."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        self._secrets: dict[str, str] = {}
        self._replacements: list[tuple[str, str]] = []
        #: What is left of a value once its whole spellings are replaced (secretparts).
        self._parts: list[tuple[SecretParts[str], str]] = []
        self._byte_parts: list[tuple[SecretParts[bytes], bytes]] = []
        #: Counts the secret values added: text dumped under an older count may hold one
        #: unredacted (runtime.variables keeps texts and dumps them again when it moved).
        self.secrets_added = 0
        for name, value in (secrets or {}).items():
            self.add_secret(name, value)

    @classmethod
    def for_names(cls, names: Iterable[str]) -> Codec:
        """A codec redacting the current value of each opened secret in ``names``."""
        values = {name: read_secret(name) for name in names}
        return cls({name: value for name, value in values.items() if value})

    def add_secret(self, name: str, value: str) -> None:
        if not value or self._secrets.get(name) == value:
            return
        self._secrets[name] = value
        self._add(value, placeholder(name))

    def _add(self, value: str, mark: str) -> None:
        self.secrets_added += 1
        self._replacements.extend((text, mark) for text in spellings(value))
        # Longest first, so a value containing another is replaced whole.
        self._replacements.sort(key=lambda pair: len(pair[0]), reverse=True)
        for text in part_spellings(value):
            data = text.encode("utf-8", "surrogatepass")
            self._parts.append((SecretParts(text), mark))
            self._byte_parts.append((SecretParts(data), mark.encode("ascii")))

    def add_secrets(self, values: Iterable[str]) -> None:
        """Values without a name (tests, ad-hoc callers): replaced by ``***``."""
        for value in values:
            if value and value not in self._secrets.values():
                self._secrets[f"\0{len(self._secrets)}"] = value
                self._add(value, REDACTED)

    def redact(self, text: str) -> str:
        for secret, mark in self._replacements:
            if secret in text:
                text = text.replace(secret, mark)
        for parts, mark in self._parts:
            text = parts.redact(text, mark)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        """The same redaction on bytes (a saved response body). Spellings shorter than
        6 characters are left alone here: in binary data they match by chance."""
        return self._redact_bytes(data)

    def _redact_bytes(self, data: bytes, keep: int | None = None) -> bytes:
        """With ``keep`` (more of a stream follows), a run of a value's characters that
        starts in the last ``keep`` bytes stays as it is: the next chunk may lengthen it,
        or complete a whole spelling it is part of."""
        for needle, mark in self._byte_replacements():
            if needle in data:
                data = data.replace(needle, mark)
        for parts, byte_mark in self._byte_parts:
            before = None if keep is None else len(data) - keep
            data = parts.redact(data, byte_mark, before=before)
        return data

    def _byte_replacements(self) -> list[tuple[bytes, bytes]]:
        pairs = (
            (s.encode("utf-8", "surrogatepass"), m.encode("ascii")) for s, m in self._replacements
        )
        return [(needle, mark) for needle, mark in pairs if len(needle) >= _MIN_BASE64_CHARS]

    async def redact_chunks(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """:meth:`redact_bytes` over a stream (a download saved as it arrives). The last
        bytes of each chunk, one fewer than the longest spelling, wait for the next one,
        so a value split between two chunks is found whole, and a run of its characters
        (which is no longer than a spelling) is found as long as it is."""
        pairs = self._byte_replacements()
        if not pairs:
            async for chunk in chunks:
                yield chunk
            return
        keep = max(len(needle) for needle, _ in pairs) - 1
        tail = b""
        async for chunk in chunks:
            buffer = self._redact_bytes(tail + chunk, keep)
            cut = max(len(buffer) - keep, 0)  # a spelling starting before ``cut`` was whole
            if cut:
                yield buffer[:cut]
            tail = buffer[cut:]
        if tail:
            yield self._redact_bytes(tail)

    def dumps(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _dump(value)
        if not self._replacements:
            return text
        redacted = self.redact(text)
        if redacted == text:
            return text
        try:  # a short value (``1234``, ``,``) may have matched JSON syntax, not text
            json.loads(redacted)
        except ValueError:
            return _dump(self._redact_value(value))
        return redacted

    def _redact_value(self, value: Any) -> Any:
        """Redaction inside strings only (keys included); a number spelling a secret
        becomes the placeholder. Slower than on the text: used when that broke it."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(str(k)): self._redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_value(item) for item in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = self.redact(str(value))
            return value if text == str(value) else text
        return value


class UnstorableError(ValueError):
    """A value JSON cannot hold: NaN or an infinity, a value that contains itself, or one
    nested deeper than Python's recursion limit (a handler's output, say)."""


def _dump(value: Any) -> str:
    """Compact JSON. NaN and infinities are refused (UnstorableError, saying where), not
    written as null: null stored for a value the engine still held made a resumed run
    read other data than an uninterrupted one. What the engine stores is checked where
    it enters (a step's output, a variable, the workflow's output, with their names);
    this is the net under those checks."""
    try:
        try:
            if _C_ENCODE is None:
                return _ENCODE(value)
            return "".join(_C_ENCODE(value, 0))
        except ValueError:
            found = non_finite(value, "")
            if found is None:
                raise  # another refusal (an integer past Python's digit limit): as it is
            raise UnstorableError(found) from None
    except RecursionError:
        raise UnstorableError("it contains itself, or is nested too deeply for JSON") from None


def loads(text: str | None) -> Any:
    """``json.loads`` of stored JSON (None stays None). Stored JSON is compact, so the C
    scanner behind ``json.loads`` reading the whole text at once gives its answer without
    its two Python frames and whitespace regexes (~1.1 -> 0.4 us a value; a document has a
    dozen). Anything else (spaces around, trailing text, an error) goes through
    ``json.loads`` itself (tests/test_codec.py pins the two equal)."""
    if text is None:
        return None
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


#: The C scanner behind ``json.loads`` (JSONDecoder's defaults): see ``loads``.
_scan = cast("Callable[[str, int], tuple[Any, int]]", json.JSONDecoder().scan_once)  # type: ignore[attr-defined]


def same_json(one: Any, other: Any) -> bool:
    """Whether two JSON values are the same as JSON: ``true``, ``1`` and ``1.0`` differ,
    though Python finds ``True == 1 == 1.0``; key order does not count."""
    return json.dumps(one, sort_keys=True) == json.dumps(other, sort_keys=True)

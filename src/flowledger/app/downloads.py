"""An artifact's name as the ``Content-Disposition`` header of its download, for every
face that serves one (the API's ``GET /artifacts/{id}``, the pages' artifact links).

A header value is Latin-1 bytes on the wire (Starlette refuses anything else, so a name
such as ``文件.txt`` was a 500), so the name goes out twice (RFC 6266 §4.3): as
``filename*=UTF-8''…``, percent-encoded (RFC 8187), which every current browser reads,
and as a plain ``filename="…"`` for the clients that do not, with each character that
is not printable ASCII, or that a quoted string or a naive parser trips on (``"``,
``\\``, ``;``, ``%``), replaced by ``_``. CR and LF never reach the header either way.
"""

from __future__ import annotations

from urllib.parse import quote

#: RFC 8187 ``attr-char`` besides letters, digits and ``-._~`` (``quote`` keeps those).
_ATTR_CHARS = "!#$&+^`|"
#: Printable ASCII that stays in the quoted fallback.
_UNSAFE_IN_FALLBACK = frozenset('"\\;%')


def content_disposition(name: str) -> str:
    """``attachment; filename="<ASCII fallback>"; filename*=UTF-8''<name, encoded>``."""
    fallback = "".join(c if " " <= c <= "~" and c not in _UNSAFE_IN_FALLBACK else "_" for c in name)
    # A lone surrogate has no UTF-8 form: "?" stands for it rather than failing the download.
    encoded = quote(name.encode("utf-8", "replace"), safe=_ATTR_CHARS)
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"

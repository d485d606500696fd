"""Text that a database can hold: UTF-8 has no form for a lone surrogate (``"\\ud800"``,
or an undecodable byte of a command's argument, read as ``"\\udcff"``), and a driver
given one raises a raw UnicodeEncodeError. So no stored id or name holds one: a lookup
by such text finds nothing, and says so with the text spelled escaped (tour 23)."""

from __future__ import annotations

from flowledger.errors import NotFoundError


def encodable(text: str) -> bool:
    """``text`` has a UTF-8 form (no lone surrogate, which no database text holds)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def spelled(text: str) -> str:
    """``text`` for a message, a lone surrogate spelled ``\\ud800`` (a message must be
    printable and storable itself)."""
    return text if encodable(text) else text.encode("utf-8", "backslashreplace").decode()


def quoted(text: str) -> str:
    """``repr(text)``, or :func:`spelled` in quotes (repr would double its backslash)."""
    return repr(text) if encodable(text) else f"'{spelled(text)}'"


def known_execution_id(execution_id: str) -> None:
    """NotFoundError, as for any id that names no execution, when ``execution_id`` holds
    a lone surrogate: asked of the database, it raised a raw UnicodeEncodeError."""
    if not encodable(execution_id):
        raise NotFoundError(f"execution {spelled(execution_id)} does not exist")

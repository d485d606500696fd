"""JSON in and out of the database, with secret values redacted on the way in."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
#: One encoder for every column: ``json.dumps`` with these options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


class Codec:
    """Serializes JSON columns; every secret value a template read is replaced by ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._escaped: list[str] = []

    def add_secrets(self, values: Iterable[str]) -> None:
        for value in values:
            if value and value not in self._secrets:
                self._secrets.add(value)
                # Match the value as it appears inside a JSON string, longest first.
                self._escaped.append(json.dumps(value)[1:-1])
                self._escaped.sort(key=len, reverse=True)

    def dumps(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _ENCODE(value)
        for secret in self._escaped:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)

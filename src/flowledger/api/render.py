"""Rendering results: documents the application layer built are sent as they are.

Decision: routes declare their ``response_model`` (so the OpenAPI document has the real
shapes) but return a ready :class:`JSONResponse`: the TypedDict documents are already
JSON, and validating every execution document again would cost for nothing. The
schemathesis tests check that what is sent matches the declared schema.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel


def render(value: Any, status: int = 200) -> JSONResponse:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return JSONResponse(value, status_code=status)


def page(items: list[Any], next_cursor: str | None = None) -> JSONResponse:
    """A list answer: ``{items, nextCursor}`` (None: the last page)."""
    return JSONResponse({"items": items, "nextCursor": next_cursor})


def given(**values: Any) -> dict[str, Any]:
    """The query parameters a client gave (a request model's defaults stand for the rest)."""
    return {k: v for k, v in values.items() if v is not None}

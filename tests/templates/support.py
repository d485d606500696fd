"""Shared helpers for the template tests: one engine and a realistic data store."""

from __future__ import annotations

from typing import Any

from flowledger.templates import TemplateEngine

ENGINE = TemplateEngine()


def data_store() -> dict[str, Any]:
    """A fresh data store shaped like the runtime's (plain dicts and lists)."""
    return {
        "steps": {
            "query_leads": {
                "status": "Completed",
                "output": {
                    "entities": [{"id": 1, "Email": "a@x.io"}, {"id": 2}, {"id": 3}],
                    "totalCount": 3,
                    "hasMore": False,
                },
            },
            "fetch": {"output": {"body": {"n": "{{7*7}}"}, "items": [1, 2], "keys": "K"}},
        },
        "variables": {"total": 2, "label": "Leads"},
        "loop": {"process_items": {"item": {"payload": {"Email": "b@x.io"}}, "index": 0}},
        "trigger": {"arguments": {"region": "EU"}},
        "input": {"region": "EU"},
        "context": {"team": "sales"},
        "__steps__": {"query_leads": {"outputData": {"totalCount": 3}}},
    }


def render(source: str, context: dict[str, Any] | None = None) -> Any:
    return ENGINE.compile(source).render(data_store() if context is None else context)

"""The docs page at ``/api/v1/docs``: a plain HTML list of the routes with their
summaries, built from the OpenAPI document. Decision: no Swagger UI or ReDoc, whose
assets come from a CDN; the machine-readable document is ``/api/v1/openapi.json``."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowledger.api.deps import API_PREFIX

router = APIRouter(tags=["docs"])

_METHODS = ("get", "post", "put", "patch", "delete")


@router.get(f"{API_PREFIX}/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    document: dict[str, Any] = request.app.openapi()
    rows = []
    for path, item in sorted(document.get("paths", {}).items()):
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            rows.append(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>".format(
                    method.upper(),
                    html.escape(path),
                    html.escape(str(operation.get("summary", ""))),
                )
            )
    title = html.escape(f"{document['info']['title']} {document['info']['version']}")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title} API</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:.2em 1em;vertical-align:top}}</style>
</head><body><h1>{title} API</h1>
<p>Every route under <code>{API_PREFIX}</code> needs <code>Authorization: Bearer TOKEN</code>
(<code>flowledger tokens create NAME --role viewer|operator|admin</code>). The OpenAPI
document: <a href="{API_PREFIX}/openapi.json">{API_PREFIX}/openapi.json</a>.</p>
<table><tr><th>method</th><th>path</th><th>what (role)</th></tr>
{chr(10).join(rows)}
</table></body></html>"""
    return HTMLResponse(page)

"""Webhook triggers: ``POST /hooks/{path}`` (no ``/api/v1`` prefix, no token: a trigger
with a secret authenticates the request by its Standard Webhooks signature instead).

Parse → ``App.hooks.receive`` → 202 ``{executionId, workflow, duplicate}``. Every rule
(size, routing, signatures, replays, body parsing) is the application's (app.hooks).
The body-limits middleware has already refused a body over ``FLOWLEDGER_MAX_BODY``;
the hook's own limit (``FLOWLEDGER_HOOK_BODY_LIMIT``) is checked by the application.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from flowledger.api.deps import AppDep
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import render
from flowledger.app import HookReceipt, ReceiveHook

router = APIRouter(tags=["hooks"], responses=ERROR_RESPONSES)


def _header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


#: Read by the application from the headers as sent (app.hooks), so declared here only.
_SIGNATURE_HEADERS = [
    _header(
        "webhook-id",
        "Standard Webhooks: the message id, needed by a trigger with a secret; a repeated "
        "one on the same path starts nothing (duplicate: true)",
    ),
    _header(
        "webhook-timestamp",
        "Standard Webhooks: Unix seconds, within 5 minutes of the server's clock",
    ),
    _header(
        "webhook-signature",
        "Standard Webhooks: v1,<base64 HMAC-SHA256 of id.timestamp.body>, space-separated "
        "when several",
    ),
    _header(
        "Idempotency-Key",
        "A trigger with auth: none: a repeated key on the same path starts nothing",
    ),
]


@router.post(
    "/hooks/{path:path}",
    status_code=202,
    response_model=HookReceipt,
    summary="Start the workflow whose webhook trigger has this path (no token; signed)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {}}, "*/*": {"schema": {}}}},
        "parameters": _SIGNATURE_HEADERS,
    },
)
async def receive_hook(path: str, request: Request, app: AppDep) -> Response:
    query: dict[str, str | list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name not in query:
            query[name] = value
        else:
            previous = query[name]
            query[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    receipt = await app.hooks.receive(
        ReceiveHook(
            path=path,
            headers=dict(request.headers.items()),
            body=await request.body(),
            query=query,
        )
    )
    return render(receipt, 202)

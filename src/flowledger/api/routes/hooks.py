"""Webhook triggers: ``POST /hooks/{path}`` (no ``/api/v1`` prefix, no token: a trigger
with a secret authenticates the request by its Standard Webhooks signature instead).

Parse → ``App.hooks.receive`` → 202 ``{executionId, workflow, duplicate}``. Every rule
(size, routing, signatures, replays, body parsing) is the application's (app.hooks).
The body-limits middleware has already refused a body over ``FLOWLEDGER_MAX_BODY``;
the hook's own limit (``FLOWLEDGER_HOOK_BODY_LIMIT``) is checked by the application.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from flowledger.api.deps import AppDep
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import render
from flowledger.app import HookReceipt, ReceiveHook

router = APIRouter(tags=["hooks"], responses=ERROR_RESPONSES)


@router.post(
    "/hooks/{path:path}",
    status_code=202,
    response_model=HookReceipt,
    summary="Start the workflow whose webhook trigger has this path (no token; signed)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {}}, "*/*": {"schema": {}}}}
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

"""The outbound webhooks, described in the OpenAPI document's ``webhooks`` (3.1): what a
subscription's URL receives. Nothing is served here; the workers send them
(worker.deliveries), signed as Standard Webhooks with the subscription's secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header

from flowledger.app.subscriptions import DeliveryPayload

webhooks = APIRouter(tags=["subscriptions"])

_SIGNED = (
    "POSTed to each subscription that asked for this event; a 2xx answer delivers it, a "
    "410 fails it at once, anything else is retried with backoff (at least once: dedupe "
    "on `webhook-id`). Verify it with the subscription's secret as any Standard Webhooks "
    "library does."
)
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Delivered (any 2xx)"},
    410: {"description": "The endpoint is gone: no retry"},
}

WebhookId = Annotated[
    str, Header(alias="webhook-id", description="The delivery's id, the same on every retry")
]
WebhookTimestamp = Annotated[
    str, Header(alias="webhook-timestamp", description="This attempt's time, Unix seconds")
]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description="v1,<base64 HMAC-SHA256 of id.timestamp.body> with the subscription's secret",
    ),
]


@webhooks.post(
    "execution.completed",
    operation_id="executionCompleted",
    summary="An execution completed (Completed or CompletedWithNoActionTaken)",
    description=_SIGNED,
    responses=_ANSWERS,
)
@webhooks.post(
    "execution.failed",
    operation_id="executionFailed",
    summary="An execution failed",
    description=_SIGNED,
    responses=_ANSWERS,
)
@webhooks.post(
    "execution.cancelled",
    operation_id="executionCancelled",
    summary="An execution was cancelled",
    description=_SIGNED,
    responses=_ANSWERS,
)
@webhooks.post(
    "execution.awaiting_input",
    operation_id="executionAwaitingInput",
    summary="An execution waits for a person's input (again for each new question)",
    description=_SIGNED,
    responses=_ANSWERS,
)
async def delivery(
    body: Annotated[DeliveryPayload, Body()],
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """Never called: the description of what subscribers receive."""

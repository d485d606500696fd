"""Outbound webhooks: subscriptions and their deliveries (SPEC §6). Admins manage them;
every token reads them, a URL shown to a viewer or an operator only to its origin.

``POST /subscriptions`` answers 201 with the subscription and its signing secret (shown
this once); ``GET`` lists them (no secrets); ``DELETE /subscriptions/{id}`` removes one
with its deliveries (204); ``GET /subscriptions/{id}/deliveries`` pages its deliveries,
newest first (status, attempts, last response code and error, next attempt).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from flowledger.api.bodies import Body
from flowledger.api.deps import API_PREFIX, Admin, AppDep, Paging, Viewer
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import page, render
from flowledger.app import (
    CreatedSubscription,
    CreateSubscription,
    DeleteSubscription,
    DeliveryDocument,
    GetSubscription,
    ListDeliveries,
    ListSubscriptions,
    Page,
    SubscriptionDocument,
)
from flowledger.app.subscriptions import Event

router = APIRouter(prefix=API_PREFIX, tags=["subscriptions"], responses=ERROR_RESPONSES)


class SubscriptionBody(Body):
    url: str
    events: list[Event]
    workflow: str | None = None
    description: str = Field(default="")


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=CreatedSubscription,
    summary="Subscribe a URL to execution events; the answer holds its secret, once (admin)",
)
async def create_subscription(body: SubscriptionBody, app: AppDep, caller: Admin) -> Response:
    created = await app.subscriptions.create(
        CreateSubscription(
            url=body.url,
            events=body.events,
            workflow=body.workflow,
            description=body.description,
            created_by=caller.created_by,
        )
    )
    return render(created, 201)


@router.get(
    "/subscriptions",
    response_model=Page[SubscriptionDocument],
    summary="Subscriptions, newest first, without secrets; below admin, URLs show only "
    "their origin (viewer)",
)
async def list_subscriptions(app: AppDep, caller: Viewer, paging: Paging) -> Response:
    found = await app.subscriptions.page(ListSubscriptions(**paging, reader=caller.role))
    return page(list(found.items), found.next_cursor)


@router.get(
    "/subscriptions/{id}",
    response_model=SubscriptionDocument,
    summary="One subscription, without its secret; below admin, its URL's origin (viewer)",
)
async def get_subscription(id: str, app: AppDep, caller: Viewer) -> Response:
    return render(await app.subscriptions.get(GetSubscription(id=id, reader=caller.role)))


@router.delete(
    "/subscriptions/{id}",
    status_code=204,
    summary="Delete a subscription and its deliveries (admin)",
)
async def delete_subscription(id: str, app: AppDep, caller: Admin) -> Response:
    await app.subscriptions.delete(DeleteSubscription(id=id))
    return Response(status_code=204)


@router.get(
    "/subscriptions/{id}/deliveries",
    response_model=Page[DeliveryDocument],
    summary="A subscription's deliveries, newest first (viewer)",
)
async def list_deliveries(
    id: str,
    app: AppDep,
    caller: Viewer,
    paging: Paging,
) -> Response:
    request = ListDeliveries(subscription_id=id, **paging, reader=caller.role)
    found = await app.subscriptions.deliveries(request)
    return page(list(found.items), found.next_cursor)

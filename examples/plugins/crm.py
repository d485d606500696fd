"""Custom step types for the examples: a tiny CRM standing in for the entity store.

Load with ``flowledger run examples/lead_followup.yaml --plugin examples/plugins/crm.py``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field

from flowledger import StepContext, StepError, step_type

LEADS: list[dict[str, Any]] = [
    {"id": "L-1", "payload": {"Email": "ada@example.com", "Status": "New", "Region": "EU"}},
    {"id": "L-2", "payload": {"Email": "alan@example.com", "Status": "New", "Region": "EU"}},
    {"id": "L-3", "payload": {"Email": "grace@example.com", "Status": "Won", "Region": "US"}},
    {"id": "L-4", "payload": {"Email": "edsger@example.com", "Status": "New", "Region": "US"}},
    {"id": "L-5", "payload": {"Email": "barbara@example.com", "Status": "New", "Region": "EU"}},
]


class QueryLeadsInput(BaseModel):
    status: str = "New"
    region: str | None = None
    limit: int = Field(100, ge=1, le=1000)


class Lead(BaseModel):
    id: str
    payload: dict[str, Any]


class QueryLeadsOutput(BaseModel):
    entities: list[Lead]
    totalCount: int
    hasMore: bool


@step_type("crm.query_leads")
async def query_leads(data: QueryLeadsInput, ctx: StepContext) -> QueryLeadsOutput:
    """Find leads by status (and region)."""
    found = [
        lead
        for lead in LEADS
        if lead["payload"]["Status"] == data.status
        and (data.region is None or lead["payload"]["Region"] == data.region)
    ]
    page = found[: data.limit]
    return QueryLeadsOutput(
        entities=[Lead(**lead) for lead in page],
        totalCount=len(found),
        hasMore=len(found) > len(page),
    )


class SendEmailInput(BaseModel):
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    subject: str
    body: str = ""


class SendEmailOutput(BaseModel):
    messageId: str
    to: str


@step_type("crm.send_email")
async def send_email(data: SendEmailInput, ctx: StepContext) -> SendEmailOutput:
    """Pretend to send an email; the message id derives from the idempotency key."""
    if data.to.endswith("@invalid"):
        raise StepError(f"mailbox {data.to} does not exist", retryable=False)
    digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:16]
    return SendEmailOutput(messageId=f"msg-{digest}", to=data.to)

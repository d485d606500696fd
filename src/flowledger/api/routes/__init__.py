"""Every router of the HTTP face, in the order they are mounted. A module under
``api/routes/`` exposes ``router``; add it here with one line."""

from __future__ import annotations

from fastapi import APIRouter

from flowledger.api.routes import (
    artifacts,
    docs,
    entities,
    events,
    executions,
    health,
    hooks,
    job_runs,
    operations,
    seed,
    subscriptions,
    tokens,
    workflows,
)

ROUTERS: list[APIRouter] = [
    health.router,
    docs.router,
    workflows.router,
    executions.router,
    job_runs.router,
    entities.router,
    artifacts.router,
    events.router,
    seed.router,
    subscriptions.router,
    operations.router,
    tokens.router,
    hooks.router,
]

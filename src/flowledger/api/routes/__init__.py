"""Every router of the HTTP face, in the order they are mounted. A module under
``api/routes/`` exposes ``router``; add it here with one line."""

from __future__ import annotations

from fastapi import APIRouter

from flowledger.api.routes import docs, events, health, seed, workflows

ROUTERS: list[APIRouter] = [
    health.router,
    docs.router,
    workflows.router,
    events.router,
    seed.router,
]

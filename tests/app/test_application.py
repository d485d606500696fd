"""app.application: what the App itself answers (readiness)."""

from __future__ import annotations

import psycopg
import pytest

from flowledger.app import App


@pytest.mark.postgresql
async def test_readiness_outlives_a_connection_the_database_dropped(pg_url: str) -> None:
    """After a restart (every backend gone), /readyz answered 503 once per dropped
    connection while the database answered: a node left its load balancer for nothing."""
    async with App(pg_url) as app:
        await app.ping()
        server, name = pg_url.rsplit("/", 1)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(  # waits (up to 10 s) until they have gone
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        await app.ping()
        await app.ping()

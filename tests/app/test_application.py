"""app.application: what the App itself answers (readiness)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from flowledger.app import App
from flowledger.errors import DatabaseUnreachableError, StorageError


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


def _closed_port() -> int:
    import socket

    with socket.socket() as taken:  # bound, then closed: nothing listens there
        taken.bind(("127.0.0.1", 0))
        return int(taken.getsockname()[1])


async def test_a_server_not_there_yet_is_waited_for_and_nothing_leaks() -> None:
    """A worker started before its database (at boot, in a failover) exited at once,
    where a running one waits it out; each failed open also left its store's threads."""
    import threading

    before = threading.active_count()
    waits: list[tuple[DatabaseUnreachableError, float]] = []
    app = App(f"postgresql://postgres@127.0.0.1:{_closed_port()}/flow")
    opening = asyncio.create_task(app.open_waiting(lambda exc, pause: waits.append((exc, pause))))
    async with asyncio.timeout(20):
        while len(waits) < 2:
            await asyncio.sleep(0.01)
    opening.cancel()
    await asyncio.gather(opening, return_exceptions=True)
    assert "Connection refused" in str(waits[0][0])
    assert [pause for _, pause in waits[:2]] == [1.0, 2.0]
    assert threading.active_count() == before


@pytest.mark.postgresql
async def test_a_server_that_refuses_this_client_is_not_waited_for(pg_url: str) -> None:
    """A database that does not exist (or a wrong password) is no passing condition."""
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StorageError, match="does not exist") as raised:
        await App(missing).open_waiting(lambda exc, pause: pytest.fail(f"waited: {exc}"))
    assert not isinstance(raised.value, DatabaseUnreachableError)

"""Token checks (app.tokens): rows trusted for a second, one read per stale token
however many requests need it at once, and a revoke that no read under way undoes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flowledger.app import App, Authenticate, CreateToken, ListTokens, RevokeToken
from flowledger.errors import AuthenticationError


def counting(
    app: App, monkeypatch: pytest.MonkeyPatch, gate: asyncio.Event | None = None
) -> list[str]:
    """The real token reads, recorded; each answers only once ``gate`` is set (a read
    over a network takes a while), or after yielding once."""
    store = app.engine.store
    real = store.find_api_token
    reads: list[str] = []

    async def find_api_token(digest: str) -> dict[str, Any] | None:
        reads.append(digest)
        row = await real(digest)
        await (gate.wait() if gate is not None else asyncio.sleep(0))
        return row

    monkeypatch.setattr(store, "find_api_token", find_api_token)
    return reads


async def test_requests_needing_the_same_stale_token_share_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with App(f"sqlite:///{tmp_path / 'tokens.db'}") as app:
        made = await app.tokens.create(CreateToken(name="many", role="operator"))
        reads = counting(app, monkeypatch)
        check = Authenticate(token=made["token"], needs="viewer")
        callers = await asyncio.gather(*(app.tokens.authenticate(check) for _ in range(20)))
        assert [c["name"] for c in callers] == ["many"] * 20
        assert len(reads) == 1
        await app.tokens.authenticate(check)
        assert len(reads) == 1  # trusted for a second


async def test_a_revoke_is_not_undone_by_a_read_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with App(f"sqlite:///{tmp_path / 'tokens.db'}") as app:
        made = await app.tokens.create(CreateToken(name="gone", role="viewer"))
        gate = asyncio.Event()
        reads = counting(app, monkeypatch, gate)
        check = Authenticate(token=made["token"], needs="viewer")
        under_way = asyncio.ensure_future(app.tokens.authenticate(check))
        while not reads:
            await asyncio.sleep(0)
        await app.tokens.revoke(RevokeToken(name="gone"))  # after the row was read
        gate.set()
        assert (await under_way)["name"] == "gone"  # it began before the revoke
        with pytest.raises(AuthenticationError):
            await app.tokens.authenticate(check)


async def test_a_name_taken_again_keeps_the_revoked_token_in_the_list(db_url: str) -> None:
    """Reusing a revoked token's name rewrote its row: the record that an operator
    token of that name existed, and when it was revoked, disappeared."""
    async with App(db_url) as app:
        old = await app.tokens.create(CreateToken(name="tmp", role="operator"))
        await app.tokens.revoke(RevokeToken(name="tmp"))
        new = await app.tokens.create(CreateToken(name="tmp", role="viewer"))
        listed = {doc["name"]: doc for doc in await app.tokens.list(ListTokens())}
        with pytest.raises(AuthenticationError):
            await app.tokens.authenticate(Authenticate(token=old["token"], needs="viewer"))
        found = await app.tokens.authenticate(Authenticate(token=new["token"], needs="viewer"))
    assert found["name"] == "tmp"
    assert (listed["tmp"]["role"], listed["tmp"]["revokedAt"]) == ("viewer", None)
    [kept] = [doc for name, doc in listed.items() if name.startswith("tmp~revoked~")]
    assert kept["role"] == "operator" and kept["revokedAt"] is not None

"""Token checks (app.tokens): rows trusted for a second, one read per stale token
however many requests need it at once, and a revoke that no read under way undoes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowledger.app import App, Authenticate, CreateToken, ListTokens, RevokeToken
from flowledger.errors import AuthenticationError, InvalidInputError


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
        listed = {doc["name"]: doc for doc in (await app.tokens.list(ListTokens())).items}
        with pytest.raises(AuthenticationError):
            await app.tokens.authenticate(Authenticate(token=old["token"], needs="viewer"))
        found = await app.tokens.authenticate(Authenticate(token=new["token"], needs="viewer"))
    assert found["name"] == "tmp"
    assert (listed["tmp"]["role"], listed["tmp"]["revokedAt"]) == ("viewer", None)
    [kept] = [doc for name, doc in listed.items() if name.startswith("tmp~revoked~")]
    assert kept["role"] == "operator" and kept["revokedAt"] is not None


async def test_a_token_given_an_expiry_is_refused_once_it_passes(tmp_path: Path) -> None:
    """Tokens had no expiry: a token handed to a contractor for a week worked until
    someone remembered to revoke it."""
    async with App(f"sqlite:///{tmp_path / 'tokens.db'}") as app:
        made = await app.tokens.create(CreateToken(name="week", expires_in="1s"))
        forever = await app.tokens.create(CreateToken(name="ops", role="admin"))
        assert made["expiresAt"] is not None and forever["expiresAt"] is None
        check = Authenticate(token=made["token"])
        assert (await app.tokens.authenticate(check))["name"] == "week"
        listed = {doc["name"]: doc for doc in (await app.tokens.list(ListTokens())).items}
        assert listed["week"]["expiresAt"] == made["expiresAt"]
        assert not listed["week"]["expired"] and listed["ops"]["expiresAt"] is None
        await asyncio.sleep(1.1)
        with pytest.raises(AuthenticationError, match=f"expired at {made['expiresAt']}"):
            await app.tokens.authenticate(check)
        assert (await app.tokens.authenticate(Authenticate(token=forever["token"])))["name"]
        listed = {doc["name"]: doc for doc in (await app.tokens.list(ListTokens())).items}
        assert listed["week"]["expired"] and not listed["ops"]["expired"]


async def test_the_list_is_paged_newest_first_and_says_who_created_each(db_url: str) -> None:
    """The list was every token in one answer, and no token said who had made it."""
    async with App(db_url) as app:
        for name in ("first", "second", "third"):
            await app.tokens.create(CreateToken(name=name, created_by=f"api-token:{name}-maker"))
        await app.tokens.create(CreateToken(name="plain"))
        first = await app.tokens.list(ListTokens(limit=3))
        assert first.next_cursor is not None
        rest = await app.tokens.list(ListTokens(limit=3, cursor=first.next_cursor))
        assert rest.next_cursor is None
        listed = [*first.items, *rest.items]
        assert [d["name"] for d in listed] == ["plain", "third", "second", "first"]
        assert [d["createdBy"] for d in listed] == [
            "python",
            "api-token:third-maker",
            "api-token:second-maker",
            "api-token:first-maker",
        ]
        with pytest.raises(InvalidInputError, match="cursor"):
            await app.tokens.list(ListTokens(cursor="not-a-cursor"))


def test_an_expiry_is_a_duration_of_a_second_or_more() -> None:
    assert CreateToken(name="a", expires_in="30d").expires_in == timedelta(days=30)
    assert CreateToken(name="a", expires_in=90).expires_in == timedelta(seconds=90)
    with pytest.raises(InvalidInputError, match="expiresIn: must be at least 1s, not 0ms"):
        CreateToken(name="a", expires_in="0s")
    with pytest.raises(InvalidInputError, match='expiresIn: "soon" is not a duration'):
        CreateToken(name="a", expires_in="soon")

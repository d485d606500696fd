"""Entities through the application layer: one order for every face."""

from __future__ import annotations

import pytest

from flowledger.app import App, CreateEntity, CreateEntityType, ListEntities
from flowledger.errors import InvalidInputError


async def test_entities_are_listed_newest_first_however_they_are_paged(app: App) -> None:
    """The CLI listed oldest first (offset pages) while the API listed newest first
    (cursor pages): the face chose the order."""
    await app.entities.create_type(CreateEntityType(name="Lead"))
    ids = []
    for i in range(5):
        doc = await app.entities.create(CreateEntity(entity_type="Lead", payload={"n": i, "t": 1}))
        ids.append(doc["id"])
    newest = ids[::-1]

    async def listed(**request: object) -> list[str]:
        page = await app.entities.list(ListEntities(entity_type="Lead", **request))
        return [doc["id"] for doc in page["items"]]

    assert await listed() == newest
    first = await app.entities.list(ListEntities(entity_type="Lead", limit=2))
    assert [doc["id"] for doc in first["items"]] == newest[:2]
    assert first["hasMore"] and first["totalCount"] == 5
    # The next page by the cursor (the API's) and by an offset (the CLI's) are one page.
    assert await listed(limit=2, cursor=first["nextCursor"]) == newest[2:4]
    assert await listed(limit=2, offset=2) == newest[2:4]
    # Ordered by a field, newest first among equals, by cursor as by offset.
    ordered = await app.entities.list(ListEntities(entity_type="Lead", order_by=["t"], limit=3))
    assert [doc["id"] for doc in ordered["items"]] == newest[:3]
    assert await listed(order_by=["t"], limit=3, cursor=ordered["nextCursor"]) == newest[3:]
    assert await listed(order_by=["t"], offset=3) == newest[3:]
    assert await listed(order_by=["-n"]) == newest  # the field's order first
    with pytest.raises(InvalidInputError, match="give a cursor or an offset, not both"):
        await listed(cursor=first["nextCursor"], offset=2)


def test_an_order_of_too_many_fields_is_named_as_the_request_names_it() -> None:
    with pytest.raises(InvalidInputError) as caught:
        ListEntities(entity_type="Lead", order_by=["Score"] * 33)
    assert caught.value.field_path == ("orderBy",)
    assert "order by up to 32 fields, not 33" in str(caught.value)

"""The entity service (``engine.entities``): types, validation, merges, queries, idempotency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from flowledger import Engine, InputError, NotFoundError
from flowledger.entities.service import Origin
from flowledger.errors import ConflictError, InvalidInputError, format_path

LEAD_SCHEMA = {
    "type": "object",
    "properties": {
        "Email": {"type": "string", "format": "email"},
        "Score": {"type": "integer", "minimum": 0},
        "Status": {"enum": ["New", "Contacted", "Won"]},
        "Address": {"type": "object", "properties": {"City": {"type": "string"}}},
    },
    "required": ["Email", "Status"],
}


@pytest.fixture
async def leads(engine: Engine) -> Engine:
    await engine.entities.create_type("Lead", LEAD_SCHEMA)
    return engine


async def test_types_are_created_once_and_listed(engine: Engine) -> None:
    doc, created = await engine.entities.create_type("Lead", LEAD_SCHEMA)
    assert created and doc["name"] == "Lead" and doc["schema"] == LEAD_SCHEMA
    assert doc["createdAt"].endswith("Z")
    again, created = await engine.entities.create_type("Lead", LEAD_SCHEMA)
    assert not created and again == doc
    with pytest.raises(ConflictError, match="'Lead' already exists with a different schema"):
        await engine.entities.create_type("Lead", {"type": "object"})
    plain, _ = await engine.entities.create_type("Note")
    assert plain["schema"] == {"type": "object"}
    assert [t["name"] for t in await engine.entities.list_types()] == ["Lead", "Note"]


async def test_bad_types_are_refused_with_the_reason(engine: Engine) -> None:
    with pytest.raises(InvalidInputError, match="entity type name 'two words' is not valid") as bad:
        await engine.entities.create_type("two words")
    assert bad.value.field_path == ("name",)
    with pytest.raises(InputError, match=r"not a valid JSON Schema: schema\.type: 'objekt'"):
        await engine.entities.create_type("Lead", {"type": "objekt"})
    backtracks = {"properties": {"Email": {"type": "string", "pattern": "^(?!x)(a+)+$"}}}
    with pytest.raises(InputError, match=r"schema\.properties\.Email\.pattern: the pattern"):
        await engine.entities.create_type("Lead", backtracks)
    assert await engine.entities.list_types() == []


async def test_every_problem_of_a_type_schema_is_named_at_its_place(engine: Engine) -> None:
    """Only the first was named: a user fixed one and was told of the next, one push at
    a time."""
    broken = {
        "type": "objekt",
        "properties": {
            "Email": {"type": "string", "pattern": "^(?!x)(a+)+$"},
            "Owner": {"$ref": "#/$defs/nobody"},
        },
    }
    with pytest.raises(InvalidInputError) as caught:
        await engine.entities.create_type("Lead", broken)
    fields = [format_path(path) for path, _ in caught.value.problems]
    assert fields == [
        "schema.type",
        "schema.properties.Email.pattern",
        "schema.properties.Owner.$ref",
    ]
    assert str(caught.value).startswith(
        "the schema of entity type 'Lead' is not a valid JSON Schema: schema.type: 'objekt'"
    )
    assert await engine.entities.list_types() == []


async def test_an_entity_is_stored_with_its_metadata(leads: Engine) -> None:
    doc = await leads.entities.create("Lead", {"Email": "ada@example.com", "Status": "New"})
    assert set(doc) == {"id", "entityType", "version", "payload", "createdAt", "updatedAt"}
    assert doc["entityType"] == "Lead" and doc["version"] == 1
    assert doc["createdAt"] == doc["updatedAt"]
    assert await leads.entities.get(doc["id"]) == doc


async def test_a_payload_that_breaks_the_schema_names_the_field(leads: Engine) -> None:
    with pytest.raises(InputError) as caught:
        await leads.entities.create("Lead", {"Email": "ada@example.com", "Score": -1})
    message = str(caught.value)
    assert "schema of entity type 'Lead'" in message
    assert "payload: 'Status' is a required property" in message
    assert "payload.Score: -1 is less than the minimum of 0" in message
    with pytest.raises(InputError, match=r"payload\.Address\.City: 5 is not of type 'string'"):
        await leads.entities.create(
            "Lead", {"Email": "a@b", "Status": "New", "Address": {"City": 5}}
        )
    with pytest.raises(InputError, match=r"payload\.Email: 'nobody' is not a 'email'"):
        await leads.entities.create("Lead", {"Email": "nobody", "Status": "New"})
    with pytest.raises(InputError, match="payload must be a JSON object, not a list"):
        await leads.entities.create("Lead", [1, 2])  # type: ignore[arg-type]
    assert (await leads.entities.list("Lead")).total_count == 0
    assert await leads.store.pending_entity_events(10) == []  # no event without a write


async def test_unknown_types_and_entities_are_not_found(leads: Engine) -> None:
    with pytest.raises(NotFoundError, match="entity type 'Leed' does not exist"):
        await leads.entities.create("Leed", {})
    with pytest.raises(NotFoundError, match="entity type 'Leed' does not exist"):
        await leads.entities.list("Leed")
    with pytest.raises(NotFoundError, match="entity nope does not exist"):
        await leads.entities.get("nope")
    with pytest.raises(NotFoundError, match="entity nope does not exist"):
        await leads.entities.update("nope", {"Score": 1})
    with pytest.raises(NotFoundError, match="entity nope does not exist"):
        await leads.entities.delete("nope")


async def test_a_lone_surrogate_is_refused_where_it_enters_naming_its_place(
    leads: Engine,
) -> None:
    """Tour 23: a lone surrogate in a payload came out of the library as a raw
    UnicodeEncodeError (the driver's), and so did one in an id, a type name or a filter.
    A payload's or a schema's is an InvalidInputError naming the field, as submit_input's
    data is refused; an id's or a name's is not found (spelled escaped in the message)."""
    valid = {"Email": "ada@example.com", "Status": "New"}
    lead = await leads.entities.create("Lead", valid)
    refused: list[tuple[Callable[[], Awaitable[object]], tuple[object, ...]]] = [
        (lambda: leads.entities.create("Lead", {**valid, "Notes": ["ok", "\ud800"]}), (1,)),
        (lambda: leads.entities.create("Lead", {**valid, "\udc00": 1}), ("\udc00",)),
        (lambda: leads.entities.update(lead["id"], {"Address": {"City": "\udfff"}}), ("City",)),
    ]
    for call, rest in refused:
        with pytest.raises(InvalidInputError, match="holds a lone surrogate") as caught:
            await call()
        assert caught.value.field_path[0] == "payload"
        assert caught.value.field_path[-len(rest) :] == rest
    with pytest.raises(InvalidInputError, match=r"^schema\.title: holds a lone surrogate"):
        await leads.entities.create_type("Odd", {"title": "\ud800"})
    with pytest.raises(InvalidInputError, match=r"^filter\.Email: '\\ud800' holds a lone"):
        await leads.entities.list("Lead", {"Email": "\ud800"})
    with pytest.raises(NotFoundError, match=r"^entity \\ud800 does not exist"):
        await leads.entities.get("\ud800")
    with pytest.raises(NotFoundError, match=r"^entity type 'L\\ud800' does not exist"):
        await leads.entities.create("L\ud800", valid)
    assert await leads.entities.get(lead["id"]) == lead  # nothing written
    assert (await leads.entities.list("Lead")).total_count == 1


async def test_an_update_merges_and_validates_again(leads: Engine) -> None:
    doc = await leads.entities.create(
        "Lead", {"Email": "ada@example.com", "Status": "New", "Address": {"City": "Berlin"}}
    )
    updated = await leads.entities.update(doc["id"], {"Status": "Won", "Score": 3})
    assert updated["version"] == 2
    assert updated["payload"] == {
        "Email": "ada@example.com",
        "Status": "Won",
        "Score": 3,
        "Address": {"City": "Berlin"},
    }
    assert updated["createdAt"] == doc["createdAt"]
    with pytest.raises(InputError, match=r"payload\.Status: 'Lost' is not one of"):
        await leads.entities.update(doc["id"], {"Status": "Lost"})
    assert (await leads.entities.get(doc["id"]))["version"] == 2
    events = await leads.store.pending_entity_events(10)
    assert [e["event_type"] for e in events] == ["created", "updated"]


async def test_an_update_that_changes_nothing_writes_nothing(leads: Engine) -> None:
    doc = await leads.entities.create("Lead", {"Email": "a@b", "Status": "New", "Score": 1})
    assert await leads.entities.update(doc["id"], {}) == doc
    assert await leads.entities.update(doc["id"], {"Status": "New", "Score": 1}) == doc
    assert await leads.entities.get(doc["id"]) == doc  # version 1, updatedAt as it was
    # JSON tells 1, 1.0 and true apart (Python's == does not): these are changes.
    assert (await leads.entities.update(doc["id"], {"Score": 1.0}))["version"] == 2
    events = await leads.store.pending_entity_events(10)
    assert [e["event_type"] for e in events] == ["created", "updated"]


async def test_a_delete_returns_the_entity_as_it_was(leads: Engine) -> None:
    doc = await leads.entities.create("Lead", {"Email": "a@b", "Status": "New"})
    assert await leads.entities.delete(doc["id"]) == doc
    with pytest.raises(NotFoundError):
        await leads.entities.get(doc["id"])


async def test_queries_filter_sort_and_page(leads: Engine) -> None:
    for i, status in enumerate(["New", "Won", "New", "New", "Contacted"]):
        await leads.entities.create("Lead", {"Email": f"p{i}@x", "Status": status, "Score": i * 10})
    page = await leads.entities.list(
        "Lead", {"Status": "New", "Score": {"gte": 10}}, order_by="-Score", limit=1
    )
    assert [e["payload"]["Email"] for e in page.entities] == ["p3@x"]
    assert (page.total_count, page.has_more) == (2, True)
    last = await leads.entities.list(
        "Lead", {"Status": {"in": ["New", "Won"]}}, order_by=["Status", "Score"], offset=3
    )
    assert [e["payload"]["Email"] for e in last.entities] == ["p1@x"]
    assert (last.total_count, last.has_more) == (4, False)
    count = await leads.entities.list("Lead", {"Status": {"ne": "New"}}, limit=0)
    assert (count.entities, count.total_count, count.has_more) == ([], 2, True)


QUERY = """
name: query
steps:
  - {id: q, type: sys.query_entity, input: {entity_type: Lead, limit: 10}}
"""


async def test_list_is_newest_first_as_every_face_lists(leads: Engine) -> None:
    """``engine.entities.list`` was oldest first while the CLI and the API (the
    application layer) list newest first. sys.query_entity stays oldest first, so a
    loop paging by offset keeps its place."""
    ids = []
    for i in range(4):
        doc = await leads.entities.create("Lead", {"Email": f"p{i}@x", "Status": "New"})
        ids.append(doc["id"])
    listed = await leads.entities.list("Lead")
    assert [e["id"] for e in listed.entities] == ids[::-1]
    tied = await leads.entities.list("Lead", order_by="Status", limit=3)
    assert [e["id"] for e in tied.entities] == ids[::-1][:3] and tied.has_more
    oldest = await leads.entities.list("Lead", newest_first=False)
    assert [e["id"] for e in oldest.entities] == ids
    done = await leads.run(leads.load_text(QUERY))
    [step] = [s for s in done["steps"].values() if s["stepId"] == "q"]
    assert [e["id"] for e in step["outputData"]["entities"]] == ids


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ({"Score": {"over": 3}}, "filter.Score: unknown operator 'over'; use one of eq, ne"),
        ({"Score": {}}, "filter.Score: give a value, or operators"),
        ({"Sco re": 1}, "filter: 'Sco re' is not a payload field name"),
        ({"a..b": 1}, "filter: 'a..b' is not a payload field name"),
        ({"Score": {"gt": True}}, "filter.Score.gt: 'gt' compares numbers or strings, not a bool"),
        ({"Score": {"lt": None}}, "filter.Score.lt: 'lt' compares numbers or strings, not null"),
        ({"Score": [1, 2]}, "filter.Score: 'eq' needs a string, number, boolean or null, not a"),
        ({"Score": {"in": 3}}, "filter.Score.in: 'in' needs a list"),
        ({"Score": {"in": [{"a": 1}]}}, "filter.Score.in: 'in' needs a string, number"),
        ({"Score": 2**63}, "filter.Score: integers here are at most 9,223,372,036,854,775,807"),
        # Stored payloads follow the schema: such a filter matched nothing, without a word.
        ({"Score": "4"}, "filter.Score: Lead's schema makes Score a number: compare it with"),
        ({"Score": {"in": [1, "2"]}}, "filter.Score: Lead's schema makes Score a number"),
        ({"Address.City": 5}, "filter.Address.City: Lead's schema makes Address.City text"),
        # JSON has no such number: PostgreSQL refused the query (a 500).
        ({"Score": {"in": [float("inf")]}}, "filter.Score.in: numbers here are finite, not inf"),
        # Each condition is SQL of its own: 5,000 took 37 s on PostgreSQL, SQLite refused 500.
        ({f"F{i}": i for i in range(101)}, "filter: a filter holds up to 100 conditions"),
    ],
)
async def test_bad_filters_are_refused_clearly(leads: Engine, filter: dict, message: str) -> None:  # type: ignore[type-arg]
    """Each refusal names its field in its path too (``details.field_path`` over HTTP):
    it was only in the message, the path empty."""
    with pytest.raises(InvalidInputError) as caught:
        await leads.entities.list("Lead", filter)
    assert message in str(caught.value)
    assert format_path(caught.value.field_path) == message.split(":")[0]


async def test_a_filter_the_schema_says_nothing_certain_of_is_taken(leads: Engine) -> None:
    await leads.entities.create("Lead", {"Email": "a@b", "Status": "New", "Score": 4})
    for filter in ({"Status": "New"}, {"Status": 5}, {"Unknown": "x"}, {"Score": 4}):
        await leads.entities.list("Lead", filter)  # an enum, no property: no refusal


async def test_bad_paging_and_sorting_are_refused(leads: Engine) -> None:
    with pytest.raises(InvalidInputError, match="limit: must be at most 1000, not 1001") as big:
        await leads.entities.list("Lead", limit=1001)
    assert big.value.field_path == ("limit",)
    with pytest.raises(InvalidInputError, match="offset: must be a whole number of at least 0"):
        await leads.entities.list("Lead", offset=-1)
    with pytest.raises(InvalidInputError, match="order_by: 'Sc;ore' is not a payload field") as bad:
        await leads.entities.list("Lead", order_by="-Sc;ore")
    assert bad.value.field_path == ("order_by",)
    with pytest.raises(InvalidInputError, match="order_by: order by up to 32 fields, not 33"):
        await leads.entities.list("Lead", order_by=["Score"] * 33)


async def test_a_write_with_a_used_idempotency_key_returns_the_recorded_change(
    leads: Engine,
) -> None:
    steps = leads.entities.bind("execution-1", 2)
    first = await steps.create("Lead", {"Email": "a@b", "Status": "New"}, idempotency_key="k")
    again = await steps.create("Lead", {"Email": "x@y", "Status": "Won"}, idempotency_key="k")
    assert again == first
    entity_id = first.entity["id"]
    updated = await steps.update(entity_id, {"Status": "Won"}, idempotency_key="u")
    assert updated.previous == first.entity
    assert await steps.update(entity_id, {"Score": 9}, idempotency_key="u") == updated
    deleted = await steps.delete(entity_id, idempotency_key="d")
    # Re-running the delete after the entity is gone is not an error: it was this write.
    assert await steps.delete(entity_id, idempotency_key="d") == deleted
    events = await leads.store.pending_entity_events(10)
    assert [(e["event_type"], e["depth"], e["execution_id"]) for e in events] == [
        ("created", 2, "execution-1"),
        ("updated", 2, "execution-1"),
        ("deleted", 2, "execution-1"),
    ]


def _engines_in_threads(
    db_url: str, writer: Callable[[Engine, str], Awaitable[None]], names: str
) -> list[BaseException]:
    """``writer(engine, name)`` for each name at once, each in a thread with an engine of
    its own (its own connections, as separate servers would have); what they raised."""
    errors: list[BaseException] = []

    def run(name: str) -> None:
        async def go() -> None:
            async with Engine(db_url) as engine:
                await writer(engine, name)

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_updates_never_lose_one(db_url: str) -> None:
    """Two engines (two threads, two connections) update one entity at once."""

    async def setup() -> str:
        async with Engine(db_url) as engine:
            await engine.entities.create_type("Counter")
            return str((await engine.entities.create("Counter", {}))["id"])

    entity_id = asyncio.run(setup())
    rounds = 15

    async def writer(engine: Engine, name: str) -> None:
        for i in range(rounds):
            await engine.entities.update_entity(entity_id, {name: i}, origin=Origin(None, 0))

    assert _engines_in_threads(db_url, writer, "ab") == []

    async def check() -> None:
        async with Engine(db_url) as engine:
            doc = await engine.entities.get(entity_id)
            assert doc["version"] == 1 + 2 * rounds
            assert doc["payload"] == {"a": rounds - 1, "b": rounds - 1}
            assert len(await engine.store.pending_entity_events(100)) == 1 + 2 * rounds

    asyncio.run(check())


async def test_many_concurrent_merges_all_apply(leads: Engine) -> None:
    """40 merges at once into one entity, from one engine: some read a version another
    changed before they wrote. Each re-reads and tries again until it is applied (20
    immediate tries were not enough: 6-8 of 40 failed with 503 "kept changing")."""
    doc = await leads.entities.create("Lead", {"Email": "a@example.com", "Status": "New"})
    writes = 40
    done = await asyncio.gather(
        *(leads.entities.update_entity(doc["id"], {f"f{i}": i}) for i in range(writes))
    )
    assert sorted(change.entity["version"] for change in done) == list(range(2, writes + 2))
    final = await leads.entities.get(doc["id"])
    assert final["version"] == 1 + writes
    assert final["payload"] == {
        "Email": "a@example.com",
        "Status": "New",
        **{f"f{i}": i for i in range(writes)},
    }


def test_merges_from_many_processes_all_apply(db_url: str) -> None:
    """Four engines (each its own connections, as four servers would be), ten writers
    each, all merging into one entity at once: every merge is applied."""

    async def setup() -> str:
        async with Engine(db_url) as engine:
            await engine.entities.create_type("Counter")
            return str((await engine.entities.create("Counter", {}))["id"])

    entity_id = asyncio.run(setup())

    async def writer(engine: Engine, name: str) -> None:
        await asyncio.gather(
            *(engine.entities.update_entity(entity_id, {f"{name}{i}": i}) for i in range(10))
        )

    assert _engines_in_threads(db_url, writer, "abcd") == []

    async def check() -> None:
        async with Engine(db_url) as engine:
            doc = await engine.entities.get(entity_id)
            assert doc["version"] == 41
            assert doc["payload"] == {f"{n}{i}": i for n in "abcd" for i in range(10)}

    asyncio.run(check())


async def test_a_write_other_writers_keep_beating_is_a_conflict(
    leads: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the deadline a lost race is a ConflictError (409: try again), not the
    StorageError (503: the database is unavailable) it was; nothing is written."""
    from flowledger.entities import service

    doc = await leads.entities.create("Lead", {"Email": "a@example.com", "Status": "New"})
    monkeypatch.setattr(service, "WRITE_DEADLINE", 0.0)
    validate = leads.entities._validate

    async with Engine(db_url) as elsewhere:  # another process's writer, as it were

        async def beaten(entity_type: str, payload: dict[str, object]) -> None:
            await validate(entity_type, payload)
            # Between this write's read and its compare-and-set, another one lands.
            await elsewhere.entities.update_entity(doc["id"], {"Score": len(payload)})

        monkeypatch.setattr(leads.entities, "_validate", beaten)
        with pytest.raises(ConflictError, match=r"kept changing .*\(1 try in 0 s\); try again"):
            await leads.entities.update_entity(doc["id"], {"Status": "Won"})
    monkeypatch.undo()
    final = await leads.entities.get(doc["id"])
    assert final["payload"]["Status"] == "New" and final["version"] == 2

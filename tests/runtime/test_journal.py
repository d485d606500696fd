"""The journal's rows: what a round writes, and what observers are told of it."""

from __future__ import annotations

from flowledger import Engine

CHAIN = """
name: chain
steps:
  - {id: a, type: test.echo, input: {value: 1}}
  - {id: b, type: test.echo, input: {value: "{{ steps.a.output.value }}"}}
"""


async def test_the_last_activity_is_the_instant_of_the_last_event(engine: Engine) -> None:
    doc = await engine.run(engine.load_text(CHAIN))
    assert doc["runtimeStatus"] == "Completed"
    row = await engine.store.get_execution(doc["id"])
    events = await engine.store.get_events(doc["id"])
    assert row is not None and events
    # The same instant, not a later clock read at the commit.
    assert row["last_activity_at"] == events[-1]["at"]

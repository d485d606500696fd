"""The pushed, enabled workflows an engine routes triggers to: read fresh on every call
(pushes, disables and enables by any process show at once), definitions read once."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.runtime import catalog as catalog_module
from flowledger.runtime.engine import Engine
from flowledger.steps.registry import StepRegistry


def definition(name: str, value: int) -> str:
    return f"name: {name}\nsteps:\n  - {{id: a, type: sys.transform, input: {{value: {value}}}}}\n"


async def live(engine: Engine) -> list[tuple[str, int]]:
    return [(v.name, v.version) for v, _, _ in await engine.live_workflows("test triggers")]


async def test_another_process_pushes_and_disables_show_at_once(
    engine: Engine, db_url: str, registry: StepRegistry
) -> None:
    await engine.push(engine.load_text(definition("alpha", 1)))
    assert await live(engine) == [("alpha", 1)]
    async with Engine(db_url, registry=registry) as other:
        await other.push(other.load_text(definition("beta", 1)))
        await other.push(other.load_text(definition("alpha", 2)))  # a new version of alpha
        assert await live(engine) == [("alpha", 2), ("beta", 1)]
        await other.store.set_workflow_disabled("beta", True)
        assert await live(engine) == [("alpha", 2)]
        await other.store.set_workflow_disabled("beta", False)
    found = await engine.live_workflows("test triggers")
    assert [(v.name, v.version) for v, _, _ in found] == [("alpha", 2), ("beta", 1)]
    # The versions and push times the store reads now, each version as stored.
    assert [(v.id, at) for v, at, _ in found] == await engine.store.active_workflow_ids()
    for version, _, _ in found:
        assert version == await engine.store.get_workflow_version(version.id)
    alpha = found[0][2].document
    assert alpha["steps"][0]["input"] == {"value": 2}


async def test_an_engine_keeps_a_bounded_number_of_versions_compiled(
    db_url: str, registry: StepRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that runs for months meets thousands of versions: it keeps the ones in
    # use, and one it let go is read and compiled again from the store when asked for.
    monkeypatch.setattr(catalog_module, "CACHED_VERSIONS", 2)
    async with Engine(db_url, registry=registry) as engine:
        ids = [(await engine.register(engine.load_text(definition("w", i)))).id for i in range(4)]
        assert len(engine._catalog.workflows) == 2 and ids[0] not in engine._catalog.workflows
        first = await engine.workflow_for_version(ids[0])
        assert first.steps["a"].spec.input == {"value": 0}
        assert (await engine.workflow_version(ids[0])).version == 1
        done = await engine.run(first)
        assert done["runtimeStatus"] == "Completed" and done["workflowVersion"] == 1


async def test_more_pushed_workflows_than_the_bound_are_not_compiled_on_every_call(
    db_url: str, registry: StepRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Routing walks every live workflow on every webhook request: walking more of them
    # than the cache holds must not evict each one before its next use (an LRU's
    # sequential-scan trap), so the live ones are held apart from the bound.
    monkeypatch.setattr(catalog_module, "CACHED_VERSIONS", 2)
    compiled: list[str] = []
    real = catalog_module.compile_document

    def counting(source: Any, *args: Any) -> Any:
        compiled.append(source.file)
        return real(source, *args)

    async with Engine(db_url, registry=registry) as pusher:
        for name in ("a", "b", "c", "d"):
            await pusher.push(pusher.load_text(definition(name, 1)))
    monkeypatch.setattr(catalog_module, "compile_document", counting)
    async with Engine(db_url, registry=registry) as engine:
        assert len(await live(engine)) == 4
        assert len(compiled) == 4  # each read and compiled once
        for _ in range(3):
            assert len(await live(engine)) == 4
        assert len(compiled) == 4
        # Running one of them finds it compiled too, though the bounded cache let it go.
        [first] = [i for i, (v, _) in engine._catalog.live.items() if v.name == "a"]
        assert first not in engine._catalog.workflows
        done = await engine.run(await engine.workflow_for_version(first))
        assert done["runtimeStatus"] == "Completed" and len(compiled) == 4

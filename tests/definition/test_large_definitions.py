"""Large generated definitions load, and step order is checked the same way at any size."""

from __future__ import annotations

import gc

import pytest

from bench.validation_bench import generated
from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.graph import Reachability
from flowledger.definition.models import MAX_STEPS
from flowledger.templates import TemplateEngine


def load(text: str):  # type: ignore[no-untyped-def]
    return load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine())


@pytest.mark.slow
def test_a_generated_ten_thousand_step_workflow_with_a_join_loads() -> None:
    workflow = load(generated(10_000))
    assert len(workflow.steps) == 10_001
    assert len(workflow.steps["join"].predecessors) == 10_000


@pytest.mark.slow
def test_more_steps_than_the_cap_are_refused() -> None:
    text = "name: big\nsteps:\n" + "".join(
        f"  - {{id: s{i}, type: sys.no_action}}\n" for i in range(MAX_STEPS + 1)
    )
    with pytest.raises(DefinitionError) as info:
        load(text)
    assert f"at most {MAX_STEPS:,} items, not {MAX_STEPS + 1:,}" in str(info.value)


def test_a_later_step_is_refused_in_a_long_chain() -> None:
    text = generated(300).replace("steps.s9.output", "steps.s200.output")
    with pytest.raises(DefinitionError) as info:
        load(text)
    assert "'s200' does not run before this step" in str(info.value)


def test_reachability_answers_like_a_walk() -> None:
    predecessors = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}
    reach = Reachability(predecessors)
    assert reach.precedes("a", "d") and reach.precedes("c", "d") and reach.precedes("b", "d")
    assert not reach.precedes("d", "a")
    assert not reach.precedes("e", "d")
    assert not reach.precedes("b", "c")
    assert not reach.precedes("d", "d")


def test_reachability_inside_a_cycle_falls_back_to_a_walk() -> None:
    predecessors = {"a": [], "b": ["a", "c"], "c": ["b"], "d": ["c"]}
    reach = Reachability(predecessors)
    assert reach.precedes("a", "c") and reach.precedes("b", "d")
    assert not reach.precedes("d", "b")


def test_a_load_runs_without_the_cyclic_collector_and_gives_it_back() -> None:
    # Its passes made a load's time grow faster than the definition (flowledger.heap).
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    text = generated(2_000)  # some 100,000 allocations: hundreds of young collections
    registry, templates = StepRegistry.with_builtins(), TemplateEngine()
    gc.collect()  # no young objects pending: a collection now could only come from the load
    gc.callbacks.append(count)
    try:
        workflow = load_workflow_text(text, registry, templates)
        # At most the one the first allocation after the load starts, as the collector
        # comes back on (hundreds without the pause).
        assert len(collections) <= 1, collections
        assert gc.isenabled()
        gc.disable()  # an application's own choice stays as it was
        load_workflow_text(text, registry, templates)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(count)
    assert len(workflow.steps) == 2_001


def test_a_refused_definition_gives_the_collector_back() -> None:
    with pytest.raises(DefinitionError):
        load(generated(300).replace("steps.s9.output", "steps.s200.output"))
    assert gc.isenabled()

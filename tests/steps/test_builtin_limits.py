"""Built-in step inputs refuse sizes that would swamp one execution (research #21)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flowledger.steps.builtins import MAX_LOOP_ITEMS, LoopInput
from flowledger.steps.subworkflow import MAX_CHILDREN, SubWorkflowInput


def test_a_loop_takes_at_most_its_item_limit() -> None:
    assert len(LoopInput(items=[0] * MAX_LOOP_ITEMS).items) == MAX_LOOP_ITEMS
    with pytest.raises(ValidationError, match=f"at most {MAX_LOOP_ITEMS} items"):
        LoopInput(items=[0] * (MAX_LOOP_ITEMS + 1))


def test_a_sub_workflow_starts_at_most_its_child_limit() -> None:
    assert len(SubWorkflowInput(workflow="w", items=[0] * MAX_CHILDREN).items or []) == MAX_CHILDREN
    with pytest.raises(ValidationError, match=f"at most {MAX_CHILDREN} items"):
        SubWorkflowInput(workflow="w", items=[0] * (MAX_CHILDREN + 1))


def test_a_loop_with_until_runs_at_most_its_item_limit_one_at_a_time() -> None:
    until = "{{ steps.check.output.done }}"
    assert LoopInput(until=until, max_iterations=MAX_LOOP_ITEMS).max_iterations == MAX_LOOP_ITEMS
    with pytest.raises(ValidationError, match=f"less than or equal to {MAX_LOOP_ITEMS}"):
        LoopInput(until=until, max_iterations=MAX_LOOP_ITEMS + 1)
    with pytest.raises(ValidationError, match="needs max_iterations"):
        LoopInput(until=until)
    with pytest.raises(ValidationError, match="concurrency must be 1, not 2"):
        LoopInput(until=until, max_iterations=3, concurrency=2)
    with pytest.raises(ValidationError, match="exactly one of 'items'"):
        LoopInput(items=[1], until=until, max_iterations=3)

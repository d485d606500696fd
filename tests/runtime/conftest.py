from __future__ import annotations

import pytest

from flowledger import StepRegistry
from tests.runtime.steps_for_tests import Recorder, make_steps


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def registry(recorder: Recorder) -> StepRegistry:
    registry = StepRegistry.with_builtins()
    for step in make_steps(recorder):
        registry.register(step)
    return registry

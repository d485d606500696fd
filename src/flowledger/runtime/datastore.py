"""The execution's data store as templates read it (SPEC §3).

Views are lazy: ``steps`` looks a step up only when a template reads it, so the
cost of a render does not grow with the number of steps already run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.runtime.codec import Codec
from flowledger.runtime.state import Scope


class StepsView(Mapping[str, Any]):
    """``steps.<id>``: the nearest run of that step (this iteration first, then outwards)."""

    __slots__ = ("_scope", "_workflow")

    def __init__(self, scope: Scope, workflow: CompiledWorkflow) -> None:
        self._scope = scope
        self._workflow = workflow

    def __getitem__(self, step_id: str) -> Any:
        run = self._scope.lookup(step_id)
        if run is not None:
            return run.envelope()
        step = self._workflow.steps.get(step_id)
        if step is None:
            raise KeyError(step_id)
        # A step of the workflow that has not run (yet, or on this path).
        return {
            "nodeId": step.id,
            "nodeName": step.name,
            "status": "NotStarted",
            "output": None,
            "outputData": None,
            "executedAt": None,
            "durationMs": None,
            "error": None,
            "attempt": 0,
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._workflow.steps)

    def __len__(self) -> int:
        return len(self._workflow.steps)


class SecretsView(Mapping[str, str]):
    """``secrets.<NAME>`` reads the environment; every value read is redacted from storage."""

    __slots__ = ("_codec",)

    def __init__(self, codec: Codec) -> None:
        self._codec = codec

    def __getitem__(self, name: str) -> str:
        value = os.environ.get(name)
        if value is None:
            raise KeyError(name)
        self._codec.add_secrets([value])
        return value

    def __iter__(self) -> Iterator[str]:
        # Never enumerate the environment into a template.
        return iter(())

    def __len__(self) -> int:
        return 0


def template_context(
    scope: Scope,
    workflow: CompiledWorkflow,
    *,
    trigger: Mapping[str, Any],
    variables: Mapping[str, Any],
    context: Mapping[str, Any],
    execution: Mapping[str, Any],
    secrets: SecretsView,
) -> dict[str, Any]:
    steps = StepsView(scope, workflow)
    arguments = trigger.get("arguments")
    if arguments is None:
        arguments = trigger.get("body")
    return {
        "trigger": trigger,
        "input": arguments if arguments is not None else {},
        "steps": steps,
        "__steps__": steps,
        "variables": variables,
        "loop": scope.loops,
        "context": context,
        "__context__": context,
        "execution": execution,
        "secrets": secrets,
    }

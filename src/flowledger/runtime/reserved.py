"""The engine's part of a step's stored state, under one key of its own.

A custom step's ``Suspend(state=...)`` is its handler's mapping; the engine keeps what
it needs with the parked step (the attempt's pending ``ctx.variables`` changes, what its
wait waits for, the input that woke it) in that same stored state, under
:data:`ENGINE_KEY` only, so a handler may use every other name (``variables``, ``wait``
and ``input`` among them). A completed step keeps its ``ctx.variables`` changes there
too (a rerun that reuses the step replays them).

Rows written before 2026-12 kept those three under the state's own keys ``variables``,
``wait`` and ``input`` (a handler's were dropped). A state without :data:`ENGINE_KEY` is
read that way, so an execution parked by an earlier build resumes after the upgrade;
its next write is in the new shape. The built-in waits (``sys.wait_for_input``,
``sys.sub_workflow``) write a state that is all the engine's, ``{"wait": ...}``, read
the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The one key of a step's stored state that is the engine's.
ENGINE_KEY = "__flowledger__"
#: Where rows written before 2026-12 kept the engine's part.
_LEGACY_KEYS = ("variables", "wait", "input")


def engine_part(state: Any) -> Mapping[str, Any]:
    """What the engine keeps in a step's stored ``state`` (either shape)."""
    if not isinstance(state, Mapping):
        return {}
    if ENGINE_KEY in state:
        part = state[ENGINE_KEY]
        return part if isinstance(part, Mapping) else {}
    return {key: state[key] for key in _LEGACY_KEYS if key in state}


def handler_part(state: Any) -> dict[str, Any]:
    """The handler's own part of a step's stored ``state`` (either shape)."""
    if not isinstance(state, Mapping):
        return {}
    if ENGINE_KEY in state:
        return {key: value for key, value in state.items() if key != ENGINE_KEY}
    return {key: value for key, value in state.items() if key not in _LEGACY_KEYS}


def with_engine_part(state: Any, **changes: Any) -> dict[str, Any]:
    """``state`` in the new shape, its engine part updated with ``changes``."""
    return {**handler_part(state), ENGINE_KEY: {**engine_part(state), **changes}}


def resume_state(state: Any) -> dict[str, Any]:
    """The ``state`` a step's ``resume`` is given: its handler's own, and ``"input"``,
    the data an input from outside woke it with (over a handler's own ``"input"``:
    runtime.waits)."""
    given = handler_part(state)
    engine = engine_part(state)
    if "input" in engine:
        given["input"] = engine["input"]
    return given

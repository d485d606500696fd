"""The ``ctx.variables`` of one step attempt: its changes wait for the attempt to succeed."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from flowledger.errors import StepError
from flowledger.runtime.reserved import engine_part
from flowledger.steps.base import VariableAccess
from flowledger.steps.builtins import apply_variable_op, variable_value

#: One ``ctx.variables`` change: ``(name, op, value)``, stored as ``[name, op, value]``.
Change = tuple[str, str, Any]


class Variables(VariableAccess, Protocol):
    """The execution's variables (runtime.variables, which imports what imports this)."""

    def apply_all(self, ops: Iterable[Change]) -> None: ...


class AttemptVariables:
    """``ctx.variables`` of one step attempt: the attempt reads its own changes at once,
    and the execution's variables take them when the attempt completes, in the order
    they were made and applied to the values then current, so concurrent steps'
    increments still add up. A failed attempt changes nothing: its retry does not count
    twice. An attempt that suspends keeps its changes pending with its state (see
    ``parked``): its resumed handler reads them, and they count once it completes."""

    __slots__ = ("_pending", "_shared", "ops")  # one per step attempt that gets a context

    def __init__(self, shared: Variables, pending: Iterable[Change] = ()) -> None:
        # Weakly: the step execution holds this, and the execution's variables hold its
        # journal; a strong reference closed a cycle only the cyclic collector frees.
        self._shared = weakref.ref(shared)
        self._pending: dict[str, Any] = {}
        #: (name, op, value) in the order the handler made them.
        self.ops: list[Change] = []
        for name, op, value in pending:  # made before the attempt suspended
            self.ops.append((name, op, value))
            # One that no longer fits the values now current fails the attempt's commit.
            with contextlib.suppress(StepError):
                self._pending[name] = apply_variable_op(self.get(name), op, value, name)

    def get(self, name: str) -> Any:
        return self._pending[name] if name in self._pending else self._variables().get(name)

    def _variables(self) -> Variables:
        shared = self._shared()
        if shared is None:  # pragma: no cover - the runner outlives its steps' handlers
            raise RuntimeError("the execution's variables are gone")
        return shared

    def apply(self, name: str, op: str, value: Any) -> Any:
        # Kept converted: a parked attempt's changes are stored, and read back after a restart.
        value = variable_value(value, op, name)
        new = apply_variable_op(self.get(name), op, value, name)
        self._pending[name] = new
        self.ops.append((name, op, value))
        return new

    def commit(self) -> None:
        """Apply the attempt's changes to the execution's variables (once), all or none:
        StepError when they no longer fit the values now current (Variables.apply_all)."""
        ops, self.ops = self.ops, []
        self._pending = {}
        self._variables().apply_all(ops)


# A parked attempt's changes are kept in the engine's part of its state (runtime.reserved)
# under "variables", as {"pending": [...], "applied": [...]}; a completed step's under the
# same key as the list of all it made, which a rerun replays (changes_made).
# "applied": changes an earlier build committed when the step parked (they are in the
# variables already); a parked row it left holds them as a bare list.


def parked(pending: Iterable[Change], applied: list[Any]) -> dict[str, Any]:
    """The state's "variables" of an attempt that suspends with ``pending`` changes."""
    kept: dict[str, Any] = {"pending": [list(change) for change in pending]}
    if applied:
        kept["applied"] = applied
    return kept


def pending_in(state: Mapping[str, Any] | None) -> list[Any]:
    """The changes a parked attempt made and has not applied yet."""
    kept = engine_part(state).get("variables")
    return list(kept.get("pending") or ()) if isinstance(kept, Mapping) else []


def applied_in(state: Mapping[str, Any] | None) -> list[Any]:
    """The changes a parked attempt made that are in the variables already."""
    kept = engine_part(state).get("variables")
    if isinstance(kept, Mapping):
        return list(kept.get("applied") or ())
    return list(kept or ())


def changes_made(state: Mapping[str, Any] | None) -> list[Any]:
    """The ``[name, op, value]`` changes a completed step made to the variables."""
    kept = engine_part(state).get("variables")
    return list(kept) if isinstance(kept, list) else []

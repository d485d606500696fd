"""The ``ctx.variables`` of one step attempt: its changes wait for the attempt to succeed."""

from __future__ import annotations

import weakref
from typing import Any

from flowledger.steps.base import VariableAccess
from flowledger.steps.builtins import apply_variable_op, variable_value

#: One ``ctx.variables`` change: ``(name, op, value)``, stored as ``[name, op, value]``.
Change = tuple[str, str, Any]


class AttemptVariables:
    """``ctx.variables`` of one step attempt: the attempt reads its own changes at once,
    and the execution's variables take them when the attempt succeeds (or parks), in
    the order they were made and applied to the values then current, so concurrent
    steps' increments still add up. A failed attempt changes nothing: its retry does
    not count twice."""

    __slots__ = ("_pending", "_shared", "ops")  # one per step attempt that gets a context

    def __init__(self, shared: VariableAccess) -> None:
        # Weakly: the step execution holds this, and the execution's variables hold its
        # journal; a strong reference closed a cycle only the cyclic collector frees.
        self._shared = weakref.ref(shared)
        self._pending: dict[str, Any] = {}
        #: (name, op, value) in the order the handler made them.
        self.ops: list[Change] = []

    def get(self, name: str) -> Any:
        return self._pending[name] if name in self._pending else self._variables().get(name)

    def _variables(self) -> VariableAccess:
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
        """Apply the attempt's changes to the execution's variables (once)."""
        ops, self.ops = self.ops, []
        self._pending = {}
        shared = self._variables()
        for name, op, value in ops:
            shared.apply(name, op, value)

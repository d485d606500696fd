"""User variables of one execution; changes are atomic because one round owns them."""

from __future__ import annotations

from typing import Any

from flowledger.runtime.journal import Journal
from flowledger.steps.builtins import apply_variable_op


class Variables:
    def __init__(self, values: dict[str, Any], journal: Journal) -> None:
        self.values = values
        self._journal = journal

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def apply(self, name: str, op: str, value: Any) -> Any:
        new = apply_variable_op(self.values.get(name), op, value, name)
        # Copy on write: an output that captured the old mapping must never change under it.
        self.values = {**self.values, name: new}
        # Written in the same commit as the step that changed it: never one without the other.
        self._journal.set_execution(variables=self._journal.codec.dumps(self.values))
        return new

"""User variables of one execution; changes are atomic because one round owns them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowledger.errors import StepError
from flowledger.runtime.journal import Journal
from flowledger.steps.builtins import apply_variable_op


class Variables:
    """The execution's variables and their stored JSON. The row's ``variables`` column
    is the whole mapping; serializing it whole at every change made a loop that appends
    n items cost n² (8,000 appends: 5 of the run's 8 s). So each variable's JSON text is
    kept: an append extends it by the item's text alone, other changes dump that one
    variable, and the mapping's text is joined from them once per round, when it
    commits. The texts are redacted as ``codec.dumps`` redacts; a secret opened since
    they were made has them dumped again."""

    def __init__(self, values: dict[str, Any], journal: Journal) -> None:
        self.values = values
        self._journal = journal
        #: Each variable's stored JSON text, as of ``_secrets_added`` secrets.
        self._texts: dict[str, str] = {}
        self._secrets_added = journal.codec.secrets_added

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def apply(self, name: str, op: str, value: Any) -> Any:
        """The variable after ``op``; StepError, and nothing changed, when the types do not
        fit or JSON cannot hold the value or the result (``apply_variable_op``)."""
        old = self.values.get(name)
        new = apply_variable_op(old, op, value, name)
        # Dumped here, not at the commit: a value JSON cannot hold fails its own step.
        self._texts[name] = self._text_after(name, old, op, new)
        # Copy on write: an output that captured the old mapping must never change under it.
        self.values = {**self.values, name: new}
        # Written in the same commit as the step that changed it: never one without the other.
        self._journal.set_execution_at_commit("variables", self.stored)
        return new

    def apply_all(self, ops: Iterable[tuple[str, str, Any]]) -> None:
        """Apply ``(name, op, value)`` in order, all or none: a step's ``ctx.variables``
        changes, which may no longer fit the values now current (a concurrent step set
        the variable to text, or its increment overflowed with this one's). StepError
        then, with every variable as it was."""
        values, texts, secrets_added = self.values, dict(self._texts), self._secrets_added
        try:
            for name, op, value in ops:
                self.apply(name, op, value)
        except StepError:
            self.values, self._texts, self._secrets_added = values, texts, secrets_added
            raise

    def _text_after(self, name: str, old: Any, op: str, new: Any) -> str:
        dumps = self._journal.codec.dumps
        self._forget_stale()
        text = self._texts.get(name)
        if op == "append" and text is not None:
            item = _or_null(dumps(new[-1]))  # the item as stored (converted: a datetime as text)
            return f"{text[:-1]},{item}]" if old else f"[{item}]"
        return _or_null(dumps(new))

    def _forget_stale(self) -> None:
        """Forget the kept texts if a secret was opened since they were made."""
        added = self._journal.codec.secrets_added
        if added != self._secrets_added:
            self._texts.clear()
            self._secrets_added = added

    def stored(self) -> str:
        """The mapping's JSON text, as ``codec.dumps(self.values)`` gives it."""
        self._forget_stale()
        dumps, texts = self._journal.codec.dumps, self._texts
        parts = []
        for name, value in self.values.items():
            text = texts.get(name)
            if text is None:
                text = texts[name] = _or_null(dumps(value))
            parts.append(f"{dumps(name)}:{text}")
        return "{" + ",".join(parts) + "}"


def _or_null(text: str | None) -> str:
    return "null" if text is None else text

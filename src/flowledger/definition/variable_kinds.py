"""What a variable surely holds where a step increments it, appends to it or merges into it.

``increment`` of a variable that does not hold a number, ``append`` to one that holds a
number, or ``merge`` into one that is not an object, fails its step at run time ("cannot
append to variable 'c': it holds int"). The
definition knows a variable's kind of value when every step that sets it sets a literal
of one kind, and it holds one by then: its default under ``variables:`` is of that kind,
or a step that sets it runs before the one that changes it, on every way there. Then it
holds that kind for good: ``increment``, ``append`` and ``merge`` either keep it or fail,
and a failed step changes nothing. A step of a type outside the built-ins may change any
variable (``ctx.variables``), and so may a set whose name or op is a template (a stored
version's): then nothing is known. Unknown kinds pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flowledger.definition.graph import StepPlace
from flowledger.definition.schemas import kind_of_value
from flowledger.steps.registry import StepRegistry
from flowledger.templates import contains_template

#: What each op needs the variable to hold (None: null too, which becomes one).
_NEEDS = {"increment": "number", "append": "array", "merge": "object"}
#: Per op: what it does, to what, an empty value it takes, what it takes.
_OPS = {
    "increment": ("adds to a number", "increment", "0", "numbers"),
    "append": ("adds to a list", "append to", "[]", "lists"),
    "merge": ("joins objects", "merge into", "{}", "objects"),
}
_A_KIND = {
    "string": "text",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
}
_JSON = (str, int, float, bool, list, dict)
#: The built-in step types' names (StepRegistry reserves it): none of them changes a
#: variable but through ``sets_variable``.
_BUILT_IN = "sys."
#: Every way to a step passes a setter, not the same one on each.
_SOME = "\0some"


class VariableKinds:
    def __init__(
        self,
        declared: Mapping[str, Any],
        places: Mapping[str, StepPlace],
        registry: StepRegistry,
    ) -> None:
        self._declared = declared
        self._places = places
        #: Per variable: the ids of the steps that set it, and the kind they all set
        #: (None: not one kind, or not known).
        self._setters: dict[str, list[str]] = {}
        self._kinds: dict[str, str | None] = {}
        self._changes: list[tuple[str, str, str]] = []  # (step id, name, op)
        #: Per variable, per step: which setter every way to it passes (``_flow``).
        self._memo: dict[str, dict[str, str | None]] = {}
        self._known = self._read_writes(registry)

    def _read_writes(self, registry: StepRegistry) -> bool:
        for sid, place in self._places.items():
            step_type = registry.get(place.spec.type)
            if step_type is None or not step_type.name.startswith(_BUILT_IN):
                return False  # may change any variable through ctx.variables
            if not step_type.sets_variable:
                continue
            given = place.spec.input
            if not isinstance(given, Mapping):
                return False
            name, op = given.get("name"), given.get("op", "set")
            if not isinstance(name, str) or not isinstance(op, str):
                return False
            if contains_template(name) or contains_template(op):
                return False  # a stored version's: any variable, any op
            if op == "set":
                self._setters.setdefault(name, []).append(sid)
                kind = _kind(given.get("value"))
                if self._kinds.get(name, kind) != kind:
                    kind = None
                self._kinds[name] = kind
            elif op in _NEEDS:
                self._changes.append((sid, name, op))
        return True

    def problems(self) -> Iterator[tuple[str, str]]:
        """Each increment, append or merge that surely fails, as (step id, message)."""
        if not self._known:
            return
        for sid, name, op in self._changes:
            held = self._held(name, sid)
            if held is None or held[0] == _NEEDS[op]:
                continue
            kind, why = held
            what, verb, empty, plural = _OPS[op]
            fix = f"to {verb} it, start it as {empty} (variables: {{{name}: {empty}}})"
            if name in self._setters:
                fix += f" and set it only to {plural}"
            yield (
                sid,
                f"op {op} {what}, but variable '{name}' holds {_A_KIND[kind]} here ({why}), "
                f"so the step would fail at run time; {fix}",
            )

    def _held(self, name: str, sid: str) -> tuple[str, str] | None:
        """The kind ``name`` surely holds when step ``sid`` runs, and why; None: unknown."""
        setters = self._setters.get(name, [])
        default = self._declared.get(name)
        if setters:
            kind = self._kinds.get(name)
            if kind is None or (default is not None and _kind(default) != kind):
                return None
            alike = "every step that sets it sets " + _A_KIND[kind]
            if default is not None:
                return kind, f"its default under 'variables:' is {_A_KIND[kind]}, and {alike}"
            first = self._set_before(name, sid)
            if first is None:
                return None
            return kind, f"{first} before this step runs, and {alike}"
        kind = _kind(default)
        if kind is None:
            return None
        return kind, f"its default under 'variables:' is {_A_KIND[kind]}, and no step sets it"

    def _set_before(self, name: str, sid: str) -> str | None:
        """How ``name`` is surely set whenever ``sid`` runs, in words ("step 's' sets
        it"), or None: in ``sid``'s graph every way to it passes a step that sets it, or
        so in a loop's graph for a loop ``sid`` runs inside. (A step runs after one of its
        predecessors completed, so a step on every way has completed; a literal set never
        fails.)"""
        setters = set(self._setters.get(name, ()))
        for step in (sid, *reversed(self._places[sid].scope)):
            found = self._flow(name, setters, step)
            if found is not None:
                return found
        return None

    def _flow(self, name: str, setters: set[str], step: str) -> str | None:
        """Whether every way to ``step`` in its graph passes a setter: the setter that all
        of them pass (its step id) or ``_SOME`` (each way its own), else None. Kept per
        variable and step, so the whole definition costs one pass per variable, not one
        walk back per step that changes it (a 10,000-step chain of appends)."""
        memo = self._memo.setdefault(name, {})
        predecessors = self._places[step].predecessors
        pending = [step]
        while pending:  # iterative: a chain of 10,000 steps is deeper than the stack
            current = pending[-1]
            if current in memo:
                pending.pop()
                continue
            preds = predecessors.get(current, ())
            todo = [p for p in preds if p not in setters and p not in memo]
            if todo:
                pending.extend(todo)
                continue
            pending.pop()
            found = [p if p in setters else memo[p] for p in preds]
            if not found or None in found:
                memo[current] = None  # a first step, or a way without a setter
            else:
                memo[current] = found[0] if len(set(found)) == 1 else _SOME
        result = memo[step]
        if result is None or result == _SOME:
            return None if result is None else "a step that sets it runs on every way"
        return f"step '{result}' sets it"


def _kind(value: Any) -> str | None:
    """The kind of a literal value (null and a template: None, not known)."""
    if value is None or not isinstance(value, _JSON):
        return None
    if isinstance(value, str) and contains_template(value):
        return None
    return kind_of_value(value)

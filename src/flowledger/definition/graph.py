"""Graph rules of SPEC §1: list-order defaults, ``after``, ``then``/``else`` sugar, cycles."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from flowledger.definition.compiled import Branch
from flowledger.definition.models import StepSpec
from flowledger.errors import Path

Report = Callable[[str, Path, str | None], None]  # (message, path, step id)


@dataclass(frozen=True)
class StepPlace:
    """Where a step sits: its spec, its enclosing loops and its graph's predecessor map."""

    spec: StepSpec
    scope: tuple[str, ...]
    predecessors: Mapping[str, list[str]]


@dataclass
class GraphShape:
    """Predecessors, successors and branch guards of one graph (a list of sibling steps)."""

    predecessors: dict[str, list[str]] = field(default_factory=dict)
    successors: dict[str, list[str]] = field(default_factory=dict)
    branches: dict[str, Branch] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


def resolve_graph(
    steps: Sequence[StepSpec], base: Path, report: Report, branches: Callable[[str], bool]
) -> GraphShape:
    """Work out the edges of one graph and report every rule it breaks.

    ``branches`` tells which step types may write ``then``/``else`` (asked of their kind).
    """
    shape = GraphShape()
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        index.setdefault(step.id, i)  # duplicates are reported by the compiler
    for i, step in enumerate(steps):
        if index[step.id] != i:
            continue
        shape.order.append(step.id)
        if step.after is not None:
            preds = _known(step.after, index, step, (*base, i, "after"), report)
        else:
            preds = [steps[i - 1].id] if i > 0 else []
        shape.predecessors[step.id] = preds
    _apply_branches(steps, index, base, shape, report, branches)
    for sid, preds in shape.predecessors.items():
        shape.predecessors[sid] = list(dict.fromkeys(preds))  # keep order, drop repeats
        if sid in shape.predecessors[sid]:
            report("a step cannot run after itself", (*base, index[sid], "after"), sid)
            shape.predecessors[sid].remove(sid)
    shape.successors = {sid: [] for sid in shape.order}
    for sid in shape.order:
        for pred in shape.predecessors[sid]:
            shape.successors[pred].append(sid)
    _report_cycles(shape, index, base, report)
    return shape


def _known(
    names: Sequence[str], index: dict[str, int], step: StepSpec, path: Path, report: Report
) -> list[str]:
    found = []
    for j, name in enumerate(names):
        if name in index:
            found.append(name)
        else:
            report(
                f"'{name}' is not a step of this graph{_suggest(name, index)}",
                (*path, j),
                step.id,
            )
    return found


def _apply_branches(
    steps: Sequence[StepSpec],
    index: dict[str, int],
    base: Path,
    shape: GraphShape,
    report: Report,
    branches: Callable[[str], bool],
) -> None:
    owners: dict[str, str] = {}
    for i, step in enumerate(steps):
        for field_name, targets, result in (("then", step.then, True), ("else", step.else_, False)):
            if targets is None:
                continue
            if not branches(step.type):
                report(
                    f"'{field_name}' is only allowed on sys.condition steps",
                    (*base, i, field_name),
                    step.id,
                )
                continue
            where = (*base, i, field_name)
            for target in _known(targets, index, step, where, report):
                if target == step.id:
                    # Said here, at the entry: as an edge it came out as an `after`
                    # problem, on the step's id line, of a step that wrote no `after`.
                    report(
                        f"a condition cannot be its own '{field_name}' branch",
                        (*where, list(targets).index(target)),
                        step.id,
                    )
                    continue
                if target in owners:
                    report(
                        f"'{target}' is already a then/else target of '{owners[target]}'; "
                        "a step can follow only one branch (join branches with after)",
                        (*base, i, field_name),
                        step.id,
                    )
                    continue
                owners[target] = step.id
                target_spec = steps[index[target]]
                # The branch replaces the list-order default; an explicit after is kept too.
                explicit = shape.predecessors[target] if target_spec.after is not None else []
                shape.predecessors[target] = [step.id, *explicit]
                shape.branches[target] = Branch(condition=step.id, result=result)


def _report_cycles(shape: GraphShape, index: dict[str, int], base: Path, report: Report) -> None:
    indegree = {sid: len(p) for sid, p in shape.predecessors.items()}
    ready = [sid for sid, n in indegree.items() if n == 0]
    seen = 0
    while ready:
        sid = ready.pop()
        seen += 1
        for nxt in shape.successors[sid]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if seen == len(indegree):
        return
    stuck = {sid for sid, n in indegree.items() if n > 0}
    cycle = _one_cycle(stuck, shape)
    first = min(cycle, key=lambda s: index[s])
    report(
        "the steps form a cycle: " + " -> ".join([*cycle, cycle[0]]),
        (*base, index[first], "after"),
        first,
    )


def _one_cycle(stuck: set[str], shape: GraphShape) -> list[str]:
    start = min(stuck)
    path: list[str] = []
    on_path: dict[str, int] = {}
    node = start
    while node not in on_path:
        on_path[node] = len(path)
        path.append(node)
        node = next(p for p in shape.predecessors[node] if p in stuck)
    return list(reversed(path[on_path[node] :]))


def _suggest(name: str, candidates: dict[str, int]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def ancestors(step_id: str, predecessors: Mapping[str, list[str]]) -> set[str]:
    """Every step that must finish before ``step_id`` in its graph."""
    seen: set[str] = set()
    stack = list(predecessors.get(step_id, ()))
    while stack:
        sid = stack.pop()
        if sid not in seen:
            seen.add(sid)
            stack.extend(predecessors.get(sid, ()))
    return seen


class Reachability:
    """Ancestor test for one graph, in time and memory near-linear in its size.

    Each step gets a position in topological order and an ancestor set held as the bits of
    one int, built from its predecessors' sets in that order: a 10,000-step chain costs a few
    MB of bits instead of 10,000 Python sets. Steps caught in a cycle (a reported error) fall
    back to a walk.
    """

    def __init__(self, predecessors: Mapping[str, list[str]]) -> None:
        self._predecessors = predecessors
        self._position: dict[str, int] = {}
        self._bits: dict[str, int] = {}
        successors: dict[str, list[str]] = {sid: [] for sid in predecessors}
        indegree: dict[str, int] = {}
        for sid, preds in predecessors.items():
            indegree[sid] = 0
            for pred in preds:
                if pred in successors:
                    successors[pred].append(sid)
                    indegree[sid] += 1
        ready = [sid for sid, n in indegree.items() if n == 0]
        while ready:
            sid = ready.pop()
            self._position[sid] = len(self._position)
            bits = 0
            for pred in predecessors[sid]:
                if pred in self._bits:
                    bits |= self._bits[pred] | (1 << self._position[pred])
            self._bits[sid] = bits
            for nxt in successors[sid]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)

    def precedes(self, target: str, step_id: str) -> bool:
        """Whether ``target`` must finish before ``step_id`` starts."""
        bits = self._bits.get(step_id)
        position = self._position.get(target)
        if bits is None or position is None:
            return target in ancestors(step_id, self._predecessors)
        return bits >> position & 1 == 1


def report_dead_steps(
    steps: Sequence[StepSpec],
    base: Path,
    shape: GraphShape,
    blocks: Callable[[StepSpec], bool],
    report: Report,
) -> None:
    """Refuse steps that can never run because every path to them passes a step that never
    completes (``blocks``: a sys.fail without ``continue_on_error``).

    By the graph rules a step runs only if a predecessor completed. Such a step either
    fails the execution or, its ``when`` false, is Disabled, and so is every step whose
    predecessors all are: the execution then ends Completed having skipped them.
    Each step where it starts is reported once, naming the steps after it that go with it.
    ``continue_on_error`` on the failing step lets its successors run (it then counts as
    done), so such a step blocks nothing.
    """
    position: dict[str, int] = {}
    for i, step in enumerate(steps):
        position.setdefault(step.id, i)  # duplicates are reported by the compiler
    specs = {sid: steps[i] for sid, i in position.items()}
    dead: set[str] = set()
    for sid in topological(shape):
        preds = shape.predecessors[sid]
        if preds and all(p in dead or blocks(specs[p]) for p in preds):
            dead.add(sid)
    for sid in sorted(dead, key=position.__getitem__):
        blockers = [p for p in shape.predecessors[sid] if p not in dead]
        if not blockers:
            continue  # named in the message of the step where it starts
        step = specs[sid]
        at: Path = (*base, position[sid])
        where = (*at, "after") if step.after is not None else at
        report(_dead_message(step, blockers, shape, dead, specs), where, sid)


def _dead_message(
    step: StepSpec,
    blockers: list[str],
    shape: GraphShape,
    dead: set[str],
    specs: Mapping[str, StepSpec],
) -> str:
    sid = step.id
    listed = step.after is None and sid not in shape.branches
    names = _names(blockers)
    how = f"it comes after {names} in the list" if listed else f"it runs after {names}"
    types = " / ".join(sorted({specs[b].type for b in blockers}))
    if len(blockers) == 1:
        what = f"a {types} step, which never completes"
    else:
        what = f"{types} steps, which never complete"
    message = (
        f"can never run: {how}, {what} (when it runs it fails the execution; "
        "when its when is false it is Disabled, and a step runs only after a predecessor "
        "completed)"
    )
    also_dead = [p for p in shape.predecessors[sid] if p in dead]
    if also_dead:
        message += f", and after {_names(also_dead)}, which never run either"
    after = _downstream(sid, shape, dead)
    if after:
        message += f"; nor can {_names(after)}, which run only after it"
    if len(blockers) > 1:
        return (
            f"{message}. Make '{sid}' run after steps that complete, or make each check a "
            "sys.condition whose else is the failing step"
        )
    guard = blockers[0]
    return (
        f"{message}. Give '{sid}' after: [{', '.join(shape.predecessors[guard])}] (what "
        f"'{guard}' runs after) so it does not wait for '{guard}', or make the check a "
        f"sys.condition with then: [{sid}] and else: [{guard}]"
    )


def _names(ids: Sequence[str]) -> str:
    quoted = [f"'{sid}'" for sid in ids]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _downstream(start: str, shape: GraphShape, dead: set[str]) -> list[str]:
    """The dead steps that run only after ``start``, in list order."""
    found: set[str] = set()
    stack = [s for s in shape.successors[start] if s in dead]
    while stack:
        sid = stack.pop()
        if sid not in found:
            found.add(sid)
            stack.extend(s for s in shape.successors[sid] if s in dead)
    return [sid for sid in shape.order if sid in found]


def topological(shape: GraphShape) -> list[str]:
    """The steps in an order where each comes after its predecessors (a cycle's are left
    out: cycles are reported of their own)."""
    indegree = {sid: len(p) for sid, p in shape.predecessors.items()}
    ready = [sid for sid in shape.order if indegree[sid] == 0]
    ordered: list[str] = []
    while ready:
        sid = ready.pop()
        ordered.append(sid)
        for nxt in shape.successors[sid]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return ordered

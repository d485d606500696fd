"""The expression console: a template evaluated against one execution's data store.

Read-only and sandboxed like every template (``flowledger.templates``, the engine's
limits): the data store is a JSON copy (app.data_store), so nothing the
expression does reaches the execution; ``secrets`` is not offered at all, so a console
can never show one. A fresh :class:`TemplateEngine` per call keeps typed-in text out of
the engine's compile cache.

Any viewer may type an expression, so it is evaluated off the event loop, in a thread
of the console's own, one at a time per process: the templates' operation budget keeps
one evaluation to a fraction of a second, and the thread keeps even that from holding
the requests, hooks, event streams and lease renewals the loop serves (a viewer's
``map`` chains held a server for seconds). An expression typed while another is being
evaluated waits up to :data:`WAIT` seconds for its turn, then is refused
(:class:`TooManyError`, 429): parallel requests queue behind one thread instead of
taking the process's CPU between them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app.data_store import data_store
from flowledger.app.loop_counts import iteration_counts
from flowledger.app.models import Id, Request
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import TemplateError, TemplateReferenceError, TooManyError
from flowledger.runtime.datastore import StoredStepsView
from flowledger.runtime.engine import Engine
from flowledger.templates import TemplateEngine
from flowledger.types import ExecutionDocument

#: The longest expression the console takes.
MAX_EXPRESSION = 4000
#: Seconds an expression waits for the one being evaluated before it is refused.
WAIT = 2.0


class EvaluateExpression(Request):
    id: str = Id
    #: A template (``{{ steps.a.output }}``) or plain text.
    expression: str = Field(min_length=1, max_length=MAX_EXPRESSION)
    #: The loop iteration to evaluate in, per loop id (``loop.<id>`` then resolves): a
    #: loop's body step is read only in the one chosen of each loop around it.
    iterations: dict[str, int] = Field(default_factory=dict)


class Evaluation(TypedDict):
    expression: str
    ok: bool
    #: The value (JSON) when ``ok``.
    value: Any
    #: The exact error when not ``ok``: its kind and message.
    errorKind: str | None
    error: str | None


class Console:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._turn = asyncio.Semaphore(1)
        # Its own thread: the loop's default executor also serves file and DNS work.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="flowledger-console")

    async def evaluate(self, request: EvaluateExpression) -> Evaluation:
        """The expression's value, or the error it raises; NotFoundError for no such
        execution, TooManyError when another expression is still being evaluated after
        :data:`WAIT` seconds. Never changes anything."""
        doc = await self._engine.get_execution(request.id)
        workflow = await self._engine.workflow_to_read(doc["workflowTemplateVersionId"])
        try:
            await asyncio.wait_for(self._turn.acquire(), WAIT)
        except TimeoutError:
            raise TooManyError(
                "the console is still evaluating another expression (one at a time, so "
                "that none holds the server); try again in a moment",
                limit=1,
            ) from None
        loop = asyncio.get_running_loop()
        try:
            job = self._thread.submit(self._evaluate, doc, workflow, request)
        except BaseException:
            self._turn.release()
            raise

        def done(_: Future[Evaluation]) -> None:
            # The turn ends when the thread does, not when the request does: a caller
            # that hangs up must not start another while this one still runs.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._turn.release)

        job.add_done_callback(done)
        return await asyncio.wrap_future(job)

    def _evaluate(
        self, doc: ExecutionDocument, workflow: CompiledWorkflow, request: EvaluateExpression
    ) -> Evaluation:
        """The evaluation proper, in the console's thread: the data store copied, the
        expression compiled and rendered."""
        chosen = request.iterations
        store = data_store(doc, workflow, chosen)
        counts = iteration_counts(doc, workflow, chosen)
        # Outputs kept as artifacts (over the output budget) load when read, as in a run.
        # ``steps`` as a run reads it (runtime.datastore): every step of the workflow, an
        # output kept as an artifact loaded when read, and a whole-``steps`` value turned
        # into the plain JSON a sys.transform step would give (a dict of the stored
        # envelopes' views showed their Python reprs).
        stored = StoredStepsView(store["steps"], workflow, self._engine.artifacts.read_output)
        steps = _ChosenSteps(stored, workflow, chosen, counts)
        store["steps"] = steps
        store["__steps__"] = steps
        store["loop"] = _ChosenFrames(store["loop"], workflow, chosen, counts)
        store["__context__"] = store["context"]
        store["secrets"] = {}
        engine = TemplateEngine(self._engine.templates.limits)
        text = request.expression
        try:
            value = engine.compile(text).render(store)
        except TemplateError as exc:
            return {
                "expression": text,
                "ok": False,
                "value": None,
                "errorKind": type(exc).__name__,
                "error": str(exc),
            }
        return {"expression": text, "ok": True, "value": value, "errorKind": None, "error": None}


def _out_of_range(loop_id: str, chosen: Mapping[str, int], counts: Mapping[str, int]) -> str | None:
    """Why the iteration chosen of ``loop_id`` does not exist, or None (or none chosen)."""
    index = chosen.get(loop_id)
    count = counts.get(loop_id, 0)
    if index is None or 0 <= index < count:
        return None
    if count == 0:
        return f"loop '{loop_id}' has no iteration {index}: it has started none"
    if count == 1:
        return f"loop '{loop_id}' has no iteration {index}: its one iteration is 0"
    return f"loop '{loop_id}' has no iteration {index}: its iterations are 0 to {count - 1}"


class _ChosenSteps(Mapping[str, Any]):
    """``steps`` as the console reads it: a step inside loops has an output per
    iteration, so it is read only in a chosen iteration of each loop around it (the
    last one to run was read, which is no iteration in particular); a step outside
    loops reads as in a run. ``{{ steps }}`` holds the steps one can read."""

    __slots__ = ("_chosen", "_counts", "_steps", "_workflow")

    def __init__(
        self, steps: Mapping[str, Any], workflow: CompiledWorkflow,
        chosen: Mapping[str, int], counts: Mapping[str, int],
    ) -> None:  # fmt: skip
        self._steps = steps
        self._workflow = workflow
        self._chosen = chosen
        self._counts = counts

    def __getitem__(self, step_id: str) -> Any:
        step = self._workflow.steps.get(step_id)
        if step is not None and step.scope:
            problem = self._problem(step_id, step.scope)
            if problem:
                raise TemplateReferenceError(problem)
        return self._steps[step_id]

    def _problem(self, step_id: str, scope: tuple[str, ...]) -> str | None:
        missing = [loop for loop in scope if loop not in self._chosen]
        if missing:
            inside = ", ".join(f"'{loop}'" for loop in scope)
            names = [f"'{loop}'" for loop in missing]
            loops = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
            where = f"loop {inside}" if len(scope) == 1 else f"loops {inside} (outermost first)"
            return (
                f"steps.{step_id} runs inside {where}, so it has an output per iteration: "
                f"choose an iteration of {loops} to read it, or read every iteration's in "
                f"steps.{scope[0]}.output.results"
            )
        for loop in scope:
            problem = _out_of_range(loop, self._chosen, self._counts)
            if problem:
                return f"steps.{step_id}: {problem}"
        return None

    def _readable(self, step_id: str) -> bool:
        step = self._workflow.steps.get(step_id)
        return step is None or not step.scope or self._problem(step_id, step.scope) is None

    def __iter__(self) -> Iterator[str]:
        return (step_id for step_id in self._steps if self._readable(step_id))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _ChosenFrames(Mapping[str, Any]):
    """``loop`` as the console reads it: the frames of the chosen iterations; one chosen
    that does not exist says so, with the loop's range."""

    __slots__ = ("_chosen", "_counts", "_frames", "_workflow")

    def __init__(
        self, frames: Mapping[str, Any], workflow: CompiledWorkflow,
        chosen: Mapping[str, int], counts: Mapping[str, int],
    ) -> None:  # fmt: skip
        self._frames = frames
        self._workflow = workflow
        self._chosen = chosen
        self._counts = counts

    def __getitem__(self, loop_id: str) -> Any:
        step = self._workflow.steps.get(loop_id)
        if step is not None and step.body is not None:
            problem = _out_of_range(loop_id, self._chosen, self._counts)
            if problem:
                raise TemplateReferenceError(f"loop.{loop_id}: {problem}")
        return self._frames[loop_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

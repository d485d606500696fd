"""The expression console: a template evaluated against one execution's data store.

Read-only and sandboxed like every template (``flowledger.templates``, the engine's
limits): the data store is a JSON copy (app.views.data_store), so nothing the
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
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app.models import Id, Request
from flowledger.app.views import data_store
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import TemplateError, TooManyError
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
    #: The loop iteration to evaluate in, per loop id (``loop.<id>`` then resolves).
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
        doc = cast(ExecutionDocument, await self._engine.get_execution(request.id))
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
        store = data_store(doc, workflow, request.iterations)
        # Outputs kept as artifacts (over the output budget) load when read, as in a run.
        # ``steps`` as a run reads it (runtime.datastore): every step of the workflow, an
        # output kept as an artifact loaded when read, and a whole-``steps`` value turned
        # into the plain JSON a sys.transform step would give (a dict of the stored
        # envelopes' views showed their Python reprs).
        steps = StoredStepsView(store["steps"], workflow, self._engine.artifacts.read_output)
        store["steps"] = steps
        store["__steps__"] = steps
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

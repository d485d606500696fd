"""The expression console: a template evaluated against one execution's data store.

Read-only and sandboxed like every template (``flowledger.templates``, the engine's
limits): the data store is a JSON copy (app.views.data_store), so nothing the
expression does reaches the execution; ``secrets`` is not offered at all, so a console
can never show one. A fresh :class:`TemplateEngine` per call keeps typed-in text out of
the engine's compile cache.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app.models import Id, Request
from flowledger.app.views import data_store
from flowledger.errors import TemplateError
from flowledger.runtime.datastore import StoredStepsView
from flowledger.runtime.engine import Engine
from flowledger.templates import TemplateEngine
from flowledger.types import ExecutionDocument

#: The longest expression the console takes.
MAX_EXPRESSION = 4000


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

    async def evaluate(self, request: EvaluateExpression) -> Evaluation:
        """The expression's value, or the error it raises; NotFoundError for no such
        execution. Never changes anything."""
        doc = cast(ExecutionDocument, await self._engine.get_execution(request.id))
        store = data_store(doc, request.iterations)
        # Outputs kept as artifacts (over the output budget) load when read, as in a run.
        workflow = await self._engine.workflow_to_read(doc["workflowTemplateVersionId"])
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

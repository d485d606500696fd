"""The execution's data store as templates read it (SPEC §3).

Views are lazy: ``steps`` looks a step up only when a template reads it, so the
cost of a render does not grow with the number of steps already run. An output
that was stored as an artifact (over the size budget, see ``runtime.artifacts``)
is loaded only when a template reads it, also inside ``sys.loop`` results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flowledger.artifacts.service import is_reference
from flowledger.codec import Codec, placeholder
from flowledger.config import SECRET_PREFIX, SECRETS_FILE_ENV, SECRETS_LIST_ENV, read_secret
from flowledger.definition.compiled import CompiledGraph, CompiledStep, CompiledWorkflow
from flowledger.errors import StorageError, TemplateError
from flowledger.runtime.state import Scope

_OUTPUT_KEYS = frozenset({"output", "outputData"})

#: (reference, step id) → the offloaded output it stands for (``ArtifactService.read_output``).
ReadArtifact = Callable[[Mapping[str, Any], str], Any]


def _no_artifacts(reference: Mapping[str, Any], step_id: str) -> Any:
    raise StorageError(f"the output of step '{step_id}' is an artifact, and no store is open")


class StepsView(Mapping[str, Any]):
    """``steps.<id>``: the nearest run of that step (this iteration first, then outwards)."""

    __slots__ = ("_read", "_scope", "_workflow")

    def __init__(
        self, scope: Scope, workflow: CompiledWorkflow, read: ReadArtifact = _no_artifacts
    ) -> None:
        self._scope = scope
        self._workflow = workflow
        self._read = read

    def __getitem__(self, step_id: str) -> Any:
        run = self._scope.lookup(step_id)
        if run is not None:
            if run.step.body is not None or is_reference(run.output):
                return _Envelope(run.envelope(), run.step, self._read)
            return run.envelope()
        return _not_run(self._workflow, step_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._workflow.steps)

    def __len__(self) -> int:
        return len(self._workflow.steps)


def _not_run(workflow: CompiledWorkflow, step_id: str) -> dict[str, Any]:
    """``steps.<id>`` of a step of the workflow that has not run (yet, or on this path)."""
    step = workflow.steps.get(step_id)
    if step is None:
        raise KeyError(step_id)
    return {
        "nodeId": step.id,
        "nodeName": step.name,
        "status": "NotStarted",
        "output": None,
        "outputData": None,
        "executedAt": None,
        "durationMs": None,
        "error": None,
        "attempt": 0,
    }


class StoredStepsView(Mapping[str, Any]):
    """``steps`` of an execution read back from the database (the expression console):
    the envelopes stored (``{nodeId, status, output, ...}``, by step id) read as
    :class:`StepsView` reads runs. Same keys (every step of the workflow, in its order),
    same values (an output kept as an artifact loads when read, loop results lazily), and
    a Mapping, not a dict, so a template returning it whole (``{{ steps }}``) is converted
    to plain JSON as the engine converts its own (templates.convert.to_native)."""

    __slots__ = ("_envelopes", "_read", "_workflow")

    def __init__(
        self, envelopes: Mapping[str, dict[str, Any]], workflow: CompiledWorkflow,
        read: ReadArtifact,
    ) -> None:  # fmt: skip
        self._envelopes = envelopes
        self._workflow = workflow
        self._read = read

    def __getitem__(self, step_id: str) -> Any:
        env = self._envelopes.get(step_id)
        if env is None:
            return _not_run(self._workflow, step_id)
        step = self._workflow.steps.get(step_id)
        if step is None:  # not of this version (cannot be: the console reads its own)
            return env
        env = {"nodeId": env.get("nodeId"), "nodeName": step.name, **env}
        return _Envelope(env, step, self._read)

    def __iter__(self) -> Iterator[str]:
        return iter(self._workflow.steps)

    def __len__(self) -> int:
        return len(self._workflow.steps)


def output_view(value: Any, step: CompiledStep, read: ReadArtifact) -> Any:
    """A step's output as templates read it: a reference loaded, loop results lazy."""
    if is_reference(value):
        value = read(value, step.id)
    if step.body is not None and type(value) is dict and type(value.get("results")) is list:
        return _LoopOutput(value, step.body, read)
    return value


class _Wrapped(Mapping[str, Any]):
    """A read-only view over a stored dict; subclasses decide what reading a key returns."""

    __slots__ = ("_raw", "_read")

    def __init__(self, raw: dict[str, Any], read: ReadArtifact) -> None:
        self._raw = raw
        self._read = read

    def __getitem__(self, key: str) -> Any:
        return self._raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class _Envelope(_Wrapped):
    """``steps.<id>`` whose output may hold references: they load when ``output`` is read."""

    __slots__ = ("_step",)

    def __init__(self, env: dict[str, Any], step: CompiledStep, read: ReadArtifact) -> None:
        super().__init__(env, read)
        self._step = step

    def __getitem__(self, key: str) -> Any:
        value = self._raw[key]
        return output_view(value, self._step, self._read) if key in _OUTPUT_KEYS else value


class _LoopOutput(_Wrapped):
    """A ``sys.loop`` output ``{count, results}``; ``results`` is lazy when it holds references."""

    __slots__ = ("_body",)

    def __init__(self, raw: dict[str, Any], body: CompiledGraph, read: ReadArtifact) -> None:
        super().__init__(raw, read)
        self._body = body

    def __getitem__(self, key: str) -> Any:
        value = self._raw[key]
        if key != "results" or not any(_has_reference(r, self._body) for r in value):
            return value
        return LazyResults(
            _Iteration(r, self._body, self._read) if type(r) is dict else r for r in value
        )


class LazyResults(tuple[Any, ...]):
    """Loop results whose offloaded outputs load when touched.

    A tuple on purpose: a template that keeps the whole value gets a list back
    (``to_native`` turns tuples into lists, loading each item), whereas a list
    subclass would be stored as it is, wrappers and all.
    """

    __slots__ = ()


class _Iteration(_Wrapped):
    """``results[i]``: body step id → its output in iteration i, loaded on access."""

    __slots__ = ("_body",)

    def __init__(self, raw: dict[str, Any], body: CompiledGraph, read: ReadArtifact) -> None:
        super().__init__(raw, read)
        self._body = body

    def __getitem__(self, step_id: str) -> Any:
        value = self._raw[step_id]
        step = self._body.steps.get(step_id)
        return output_view(value, step, self._read) if step is not None else value


def iteration_view(outputs: Any, body: CompiledGraph, read: ReadArtifact | None) -> Any:
    """One iteration's outputs by body step id as templates read them
    (``loop.<id>.previous``): as an item of the loop's ``results`` reads, its offloaded
    outputs loaded when touched."""
    if not _has_reference(outputs, body):
        return outputs
    return _Iteration(outputs, body, read or _no_artifacts)


def _has_reference(iteration: Any, body: CompiledGraph) -> bool:
    """Whether one iteration's outputs (or a nested loop's) include a reference; no loading."""
    if type(iteration) is not dict:
        return False
    for step_id, value in iteration.items():
        if is_reference(value):
            return True
        step = body.steps.get(step_id)
        if step is not None and step.body is not None and type(value) is dict:
            inner = value.get("results")
            if type(inner) is list and any(_has_reference(r, step.body) for r in inner):
                return True
    return False


class SecretsView(Mapping[str, str]):
    """``secrets.<NAME>`` reads the secrets the operator opened (``config.read_secret``),
    never the rest of the environment; every value read is redacted from storage."""

    __slots__ = ("_codec",)

    def __init__(self, codec: Codec) -> None:
        self._codec = codec

    def __getitem__(self, name: str) -> str:
        value = read_secret(name)
        if value is None:
            raise KeyError(name)
        self._codec.add_secret(name, value)
        return value

    def __iter__(self) -> Iterator[str]:
        # Never enumerate the environment into a template.
        return iter(())

    def __len__(self) -> int:
        return 0

    def why_missing(self, name: object) -> str:
        """What a reference error says of a secret this process cannot read."""
        opened = f"{SECRET_PREFIX}{name}"
        if isinstance(name, str) and name in os.environ:
            return (
                f"{name} is set in the environment but not opened as a secret; set {opened}, "
                f"or list {name} in {SECRETS_LIST_ENV}"
            )
        return f"no secret {name!r} is opened; set {opened} (or see {SECRETS_FILE_ENV})"


class SecretPlaceholders(Mapping[str, str]):
    """``secrets.<NAME>`` as its placeholder: renders the stored copy of a step's input."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return placeholder(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def trigger_input(trigger: Mapping[str, Any]) -> Any:
    """An execution's input: the function trigger's ``arguments`` or the webhook's
    ``body`` (None for other triggers; templates read that as ``{}``). The execution
    document's ``input`` is this too (runtime.documents)."""
    arguments = trigger.get("arguments")
    return trigger.get("body") if arguments is None else arguments


def template_context(
    scope: Scope,
    workflow: CompiledWorkflow,
    *,
    trigger: Mapping[str, Any],
    variables: Mapping[str, Any],
    context: Mapping[str, Any],
    execution: Mapping[str, Any],
    secrets: SecretsView,
    read_artifact: ReadArtifact | None = None,
) -> dict[str, Any]:
    steps = StepsView(scope, workflow, read_artifact or _no_artifacts)
    arguments = trigger_input(trigger)
    return {
        "trigger": trigger,
        "input": arguments if arguments is not None else {},
        "steps": steps,
        "__steps__": steps,
        "variables": variables,
        "loop": scope.loops,
        "context": context,
        "__context__": context,
        "execution": execution,
        "secrets": secrets,
    }


def stored_input(step: CompiledStep, context: Mapping[str, Any]) -> Any:
    """The step's input rendered with each secret's placeholder instead of its value:
    what is stored for a step that sends secrets. None when a template cannot take a
    placeholder (``secrets.PORT|int``); the codec's value redaction then covers it."""
    try:
        return step.input.render({**context, "secrets": SecretPlaceholders()})
    except TemplateError:
        return None

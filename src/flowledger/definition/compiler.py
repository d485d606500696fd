"""Load → validate → compile: a definition document becomes an immutable CompiledWorkflow.

Every problem is collected and reported at once, each with file, line, column,
step id and field path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from flowledger.definition.compiled import CompiledGraph, CompiledStep, CompiledWorkflow
from flowledger.definition.constants import rendered_constants
from flowledger.definition.graph import GraphShape, StepPlace, report_dead_steps, resolve_graph
from flowledger.definition.input_fields import (
    document_fields,
    field_adapter,
    has_template,
    takes_names,
    unknown_fields,
)
from flowledger.definition.models import (
    WORKFLOW_NAME_PATTERN,
    WORKFLOW_NAME_RULE,
    StepSpec,
    WorkflowSpec,
)
from flowledger.definition.previous_entity import NULL_ON, Events, narrowed, unguarded_reads
from flowledger.definition.previous_entity import message as null_read_message
from flowledger.definition.races import first_joins, post_dominated, report_lone_races
from flowledger.definition.references import ReadContext
from flowledger.definition.salvage import salvage
from flowledger.definition.schemas import fields_taking
from flowledger.definition.secrets import check_secrets, template_strings
from flowledger.definition.source import SourceDocument, parse_document, read_document
from flowledger.definition.strictness import checking_new
from flowledger.definition.triggers import CompiledTrigger, EntityTrigger, compile_triggers
from flowledger.definition.typed_reads import TypedReads
from flowledger.definition.variable_kinds import VariableKinds
from flowledger.durations import spoken
from flowledger.errors import (
    DefinitionError,
    Path,
    Problem,
    TemplateError,
    field_message,
    format_path,
    unknown_field,
)
from flowledger.heap import collector_paused
from flowledger.numbers import LENIENT, boolean_refusal
from flowledger.schema_check import new_schema_problems, schema_problems_of
from flowledger.steps.base import StepKind, StepType
from flowledger.steps.builtins import VARIABLE_NAME
from flowledger.steps.registry import StepRegistry
from flowledger.templates import Template, TemplateEngine, contains_template
from flowledger.templates.compiler import BareTemplate
from flowledger.templates.convert import text_boolean
from flowledger.unions import plain_errors

MAX_LOOP_DEPTH = 8
#: The problems of one schema a definition's check names at most.
_SCHEMA_PROBLEMS = 10
#: The fields of a step that sets a variable that must be written out, not templated, and
#: why (the rest of the message): one rule, so both say it alike.
_WRITTEN_OUT: tuple[tuple[str, str], ...] = (
    (
        "op",
        "what each op is given is checked before the run (increment adds a number, append "
        "adds to a list, merge joins objects), so an op known only at run time could fail "
        "the step there; write one step per op and choose between them with a "
        "sys.condition's then and else",
    ),
    (
        "name",
        "each variables.NAME read is checked before the run against the names declared "
        "under 'variables:' and set by steps, so a name known only at run time could never "
        "be read; use one step per name (each with its 'when'), or keep the values in one "
        "object variable (op: merge, {{ {key: value} }}) and read variables.NAME[key]",
    ),
)


# Each entry point loads with the cyclic collector paused (flowledger.heap): it allocates
# much and leaves little cyclic garbage, and the collector's passes made the load's time
# grow faster than the definition's size.


def load_workflow(
    path: str | os.PathLike[str], registry: StepRegistry, templates: TemplateEngine
) -> CompiledWorkflow:
    with collector_paused():
        return compile_document(read_document(path), registry, templates)


def load_workflow_text(
    text: str | bytes, registry: StepRegistry, templates: TemplateEngine, file: str = "<string>"
) -> CompiledWorkflow:
    with collector_paused():
        return compile_document(parse_document(text, file), registry, templates)


def compile_document(
    source: SourceDocument, registry: StepRegistry, templates: TemplateEngine
) -> CompiledWorkflow:
    with collector_paused():
        return _Compiler(source, registry, templates).compile()


def document_checksum(document: Any) -> str:
    """Identity of a definition's content: same document, same checksum, same version."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Compiler:
    def __init__(
        self, source: SourceDocument, registry: StepRegistry, templates: TemplateEngine
    ) -> None:
        self.source = source
        self.registry = registry
        self.templates = templates
        self.problems: list[Problem] = []
        self.places: dict[str, StepPlace] = {}
        self.paths: dict[str, Path] = {}
        self.shapes: dict[str | None, GraphShape] = {}
        #: Each graph's post-dominator tree, when it has a ``join: first`` (races).
        self.post_dominated: dict[str | None, dict[str, tuple[str, ...]]] = {}
        self.compiled_templates: dict[Path, Template] = {}
        #: Steps whose own fields were refused: kept for the graph, not checked further.
        self.stand_ins: set[str] = set()
        #: Steps whose id an earlier step has, with their paths: out of the graph, but
        #: their type, input and templates are still checked (every problem at once).
        self.duplicates: list[tuple[StepSpec, Path]] = []

    # -- reporting ----------------------------------------------------------------------------

    def report(
        self, message: str, path: Path, step_id: str | None = None, *, key: bool = False
    ) -> None:
        position = self.source.position(path, key=key)
        line, column = position if position else (None, None)
        self.problems.append(
            Problem(message, self.source.file, line, column, step_id or self._step_at(path), path)
        )

    def _step_at(self, path: Path) -> str | None:
        """The id of the innermost step a document path points into."""
        node: Any = self.source.data
        found = None
        for i, segment in enumerate(path):
            try:
                node = node[segment]
            except (KeyError, IndexError, TypeError):
                break
            if i >= 1 and path[i - 1] == "steps" and isinstance(node, Mapping):
                step_id = node.get("id")
                found = step_id if isinstance(step_id, str) else found
        return found

    def fail_if_problems(self) -> None:
        if self.problems:
            ordered = sorted(self.problems, key=lambda p: (p.line or 0, p.column or 0))
            raise DefinitionError(ordered)

    # -- kinds: what a step type's kind means to the definition (never its name) ---------------

    def _kind(self, type_name: str) -> StepKind | None:
        step_type = self.registry.get(type_name)
        return step_type.kind if step_type is not None else None

    def _has_body(self, type_name: str) -> bool:
        kind = self._kind(type_name)
        return kind is not None and kind.has_body

    def _never_completes(self, step: StepSpec) -> bool:
        step_type = self.registry.get(step.type)
        return step_type is not None and step_type.never_completes and not step.continue_on_error

    def _branches(self, type_name: str) -> bool:
        kind = self._kind(type_name)
        return kind is not None and kind.branches

    # -- phases -------------------------------------------------------------------------------

    def compile(self) -> CompiledWorkflow:
        if not isinstance(self.source.data, Mapping):
            self.report("a workflow definition must be a mapping with name and steps", ())
            self.fail_if_problems()
        spec = self._parse_spec()
        self._collect(spec.steps, ("steps",), (), None)
        # Graph problems do not stop template checks: report everything in one pass.
        self._check_input_schema(spec)
        self._check_initial_values(spec)
        context = ReadContext(
            self.places,
            self.registry,
            self._variable_names(spec),
            spec.input_schema,
            compile_source=self.templates.compile,
        )
        checker = TypedReads(context, unchecked=self.stand_ins)
        for sid, place in self.places.items():
            if sid not in self.stand_ins:
                self._compile_step_templates(place.spec, self.paths[sid], checker)
        for step, path in self.duplicates:  # read as the step of its id would read them
            if step.id not in self.stand_ins:
                self._compile_step_templates(step, path, checker)
        output = None
        if spec.output is not None:
            output = self._compile_value(spec.output, ("output",), None, checker)
        triggers = compile_triggers(
            spec.triggers,
            self.templates,
            lambda message, path: self.report(message, path),
            spec.input_schema,
        )
        if checking_new():  # a new rule: a stored version's steps keep their reads
            self._previous_entity_reads(triggers)
            self._variable_changes(spec)
        secret_names = check_secrets(
            self.source.data, self._secret_places(), self.templates.compile, self.report
        )
        self.fail_if_problems()
        graph, all_steps = self._build_graph(spec.steps, None, ())
        document = dict(self.source.data)
        return CompiledWorkflow(
            spec=spec,
            document=document,
            checksum=document_checksum(document),
            file=self.source.file,
            graph=graph,
            steps=all_steps,
            output=self.templates.compile_value(spec.output) if output is not None else None,
            triggers=triggers,
            secret_names=secret_names,
            source=self.source.text,
        )

    def _previous_entity_reads(self, triggers: Sequence[CompiledTrigger]) -> None:
        """A step's input or ``when`` that reads a field of ``trigger.previousEntity``
        fails the step on the created and deleted events that start the workflow (it is
        null on them), unless guarded where it is read or by what decides whether the
        step runs (definition.previous_entity). Only a workflow started on such events
        and reading previousEntity in a step pays for the look."""
        start: Events = frozenset()
        for trigger in triggers:
            if isinstance(trigger.spec, EntityTrigger):
                events: Events = frozenset(trigger.spec.events)
                if trigger.when is not None:
                    events = narrowed(trigger.when.source, events)
                start |= events
        if not start & NULL_ON:
            return
        reading = [
            (path, template)
            for path, template in self.compiled_templates.items()
            if path[0] == "steps" and "previousEntity" in template.source
        ]
        if not reading:
            return
        before, runs = self._events_run(start)
        for path, template in reading:
            step_id = self._step_at(path)
            if step_id is None or step_id not in runs:
                continue
            at = self.paths[step_id]
            if path[: len(at)] != at:
                continue  # (a mapping with an id under an input's own 'steps')
            field = path[len(at)]
            events = before[step_id] if field == "when" else runs[step_id]
            for read in unguarded_reads(template.source, events):
                self.report(null_read_message(read, in_step=True), path, step_id)

    def _events_run(self, start: Events) -> tuple[dict[str, Events], dict[str, Events]]:
        """For each step, the events (of ``start``) on which its ``when`` is evaluated,
        and those on which it runs: it runs after one of its predecessors ran, on its
        branch of the condition it follows, and where its ``when`` may hold. A loop's
        body runs where the loop does."""
        before: dict[str, Events] = {}
        runs: dict[str, Events] = {}
        pending: list[tuple[str | None, Events]] = [(None, start)]
        while pending:
            loop_id, entry = pending.pop()
            shape = self.shapes.get(loop_id)
            if shape is None:
                continue
            for sid in _ordered(shape):
                preds = shape.predecessors.get(sid, [])
                events = entry
                if preds:
                    events = frozenset().union(*(runs.get(p, entry) for p in preds))
                branch = shape.branches.get(sid)
                if branch is not None:
                    events = self._on_branch(branch.condition, branch.result, events)
                before[sid] = events
                runs[sid] = self._on_when(self.places[sid].spec, self.paths[sid], events)
                if sid in self.shapes:  # a loop: its body runs where it does
                    pending.append((sid, runs[sid]))
        return before, runs

    def _on_branch(self, condition: str, result: bool, events: Events) -> Events:
        """The events on which ``condition``'s expression may come out ``result``."""
        where = (*self.paths[condition], "input", "expression")
        template = self.compiled_templates.get(where)
        return narrowed(template.source, events, result) if template is not None else events

    def _on_when(self, step: StepSpec, path: Path, events: Events) -> Events:
        """The events on which ``step``'s ``when`` may hold."""
        if step.when is False or (isinstance(step.when, str) and text_boolean(step.when) is False):
            return frozenset()
        template = self.compiled_templates.get((*path, "when"))
        return narrowed(template.source, events) if template is not None else events

    def _variable_changes(self, spec: WorkflowSpec) -> None:
        """An increment of a variable that surely holds text, an append to one that surely
        holds a number, a merge into one that surely holds a list
        (definition.variable_kinds): the step would fail at run time."""
        kinds = VariableKinds(spec.variables, self.places, self.registry)
        for sid, message in kinds.problems():
            if sid not in self.stand_ins:
                self.report(message, (*self.paths[sid], "input", "op"), sid)

    def _secret_places(self) -> set[Path]:
        """The input fields where ``secrets.NAME`` may appear (see definition.secrets)."""
        places: set[Path] = set()
        for sid, place in self.places.items():
            step_type = self.registry.get(place.spec.type)
            if step_type is not None:
                base = (*self.paths[sid], "input")
                places.update((*base, field) for field in step_type.secret_fields)
        return places

    def _parse_spec(self) -> WorkflowSpec:
        try:
            # A stored version is read as it was accepted (numbers.LENIENT).
            lenience = None if checking_new() else LENIENT
            return WorkflowSpec.model_validate(self.source.data, context=lenience)
        except ValidationError as exc:
            locations = []
            for error in plain_errors(exc.errors()):
                path = tuple(error["loc"])
                locations.append(path)
                self.report(_pydantic_message(error), path, key=error["type"] == "extra_forbidden")
            spec, self.stand_ins = salvage(self.source.data, locations, self._has_body)
            return spec

    def _collect(
        self, steps: Sequence[StepSpec], base: Path, scope: tuple[str, ...], loop_id: str | None
    ) -> None:
        """Register every step with its place, and check graph rules, types and nesting."""

        def report(message: str, path: Path, step_id: str | None) -> None:
            self.report(message, path, step_id)

        shape = resolve_graph(steps, base, report, self._branches)
        self.shapes[loop_id] = shape
        report_lone_races(steps, base, shape, report)
        self.post_dominated[loop_id] = post_dominated(shape, first_joins(steps))
        if checking_new():  # a new rule: a stored version with a dead step still runs
            report_dead_steps(steps, base, shape, self._never_completes, report)
        for i, step in enumerate(steps):
            path = (*base, i)
            if step.id in self.places:
                first = self.paths[step.id]
                line = (self.source.position(first) or (0, 0))[0]
                self.report(
                    f"duplicate step id '{step.id}' (first used on line {line}); step ids must be "
                    "unique across the workflow so that steps.<id> is unambiguous",
                    (*path, "id"),
                    step.id,
                )
                self.duplicates.append((step, path))
                self._check_type(step, path, scope)
                continue
            self.places[step.id] = StepPlace(step, scope, shape.predecessors)
            self.paths[step.id] = path
            self._check_type(step, path, scope)
            if step.steps is not None and self._has_body(step.type):
                self._collect(step.steps, (*path, "steps"), (*scope, step.id), step.id)

    def _check_type(self, step: StepSpec, path: Path, scope: tuple[str, ...]) -> None:
        step_type = self.registry.get(step.type)
        if step_type is None:
            import difflib

            close = difflib.get_close_matches(step.type, self.registry.names(), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            if self.registry.missing_builtin(step.type):
                how = "this step registry has no built-in types: make it with "
                how += "StepRegistry.with_builtins()"
            else:  # the CLI's flag and the library's way, whichever the reader uses
                how = "load custom step types with --plugin, or Engine(plugins=[...])"
            self.report(f"unknown step type '{step.type}'{hint} ({how})", (*path, "type"), step.id)
            return
        if step_type.kind.has_body:
            if not step.steps:
                self.report(
                    f"a {step.type} needs a body: list its steps under 'steps'", path, step.id
                )
            if len(scope) >= MAX_LOOP_DEPTH:
                self.report(f"loops are nested more than {MAX_LOOP_DEPTH} deep", path, step.id)
        elif step.steps is not None:
            self.report(
                f"only sys.loop steps have a body of 'steps'; {step.type} does not",
                (*path, "steps"),
                step.id,
                key=True,
            )
        if step.id not in self.stand_ins:
            given = self._known_input(step, step_type)
            self._check_static_input(step, given, step_type.input_model, path)
            self._check_input_rules(step, given, step_type, path)

    def _known_input(self, step: StepSpec, step_type: StepType) -> Any:
        """The step's input as far as it is known before the run: a template that reads
        nothing (``"{{ 0 }}"``) is its value (definition.constants), so the model checks
        it as the literal. A rule for new definitions only: a stored version with one
        that fails its step still compiles (a branch may never run it)."""
        if not checking_new():
            return step.input
        keep = [_iteration_end(step_type, step.input), _per_item(step_type, step.input)]
        fields = [field for field in keep if field is not None]
        return rendered_constants(step.input, self.templates.compile, fields)

    def _check_input_rules(
        self, step: StepSpec, given: Any, step_type: StepType, path: Path
    ) -> None:
        """The rules between input fields (StepType.input_rules) of an input with
        templates: without them the model ran whole (``_check_static_input``)."""
        rules = step_type.input_rules
        if rules is None or not isinstance(given, Mapping) or not has_template(given):
            return
        for field, message in rules(given):
            where = (*path, "input") if field is None else (*path, "input", field)
            self.report(message, where, step.id)

    def _check_static_input(
        self, step: StepSpec, given: Any, model: type[BaseModel], path: Path
    ) -> None:
        """Check the input as far as it is known before run time (templates are not)."""
        raw = {} if given is None else given
        input_path = (*path, "input")
        if isinstance(raw, str) and contains_template(raw):
            return
        if not isinstance(raw, Mapping):
            self.report("input must be a mapping of field names to values", input_path, step.id)
            return
        fields = document_fields(model)
        # A model that says nothing of extra fields (pydantic ignores them; a plugin's
        # input model, as the README writes one) is held to its fields as the built-ins
        # are: ``fial: true`` for ``fail`` validated and ran as if unwritten. A model that
        # wants other fields says ``extra="allow"`` (or "ignore").
        # A rule for new definitions only (definition.strictness): a stored version with
        # such a field was accepted, and must still compile to run.
        extra = model.model_config.get("extra")
        extra_rule = "ignore" if extra is None and not checking_new() else extra
        lenience = None if checking_new() else LENIENT  # booleans as numbers (numbers.py)
        # Unknown fields are said by input_fields.unknown_fields alone, with the fields
        # there are: pydantic's own "unknown field" for the same place is left out.
        said: set[Path] = set()
        if extra_rule in (None, "forbid"):
            said = self._report_unknown_fields(step, model, raw, input_path)
        if not has_template(raw):
            try:
                model.model_validate(raw, context=lenience)
            except ValidationError as exc:
                for error in plain_errors(exc.errors()):
                    where = (*input_path, *error["loc"])
                    if error["type"] == "extra_forbidden" and where in said:
                        continue
                    self.report(
                        _pydantic_message(error, list(fields)),
                        where,
                        step.id,
                        key=error["type"] == "extra_forbidden",
                    )
            return
        by_name = takes_names(model)
        for attribute, field in model.model_fields.items():
            name = field.alias or attribute
            if name not in raw and by_name and attribute in raw:
                name = attribute  # given by its name, which the model takes too
            if name not in raw:
                if field.is_required():
                    self.report(
                        f"input field '{name}' is required for {step.type}", input_path, step.id
                    )
                continue
            value = raw[name]
            if has_template(value):
                continue
            # The field alone: the model's own validator (a boolean for a number) does
            # not run here, so its rule is asked apart.
            refused = boolean_refusal(model, attribute, value) if lenience is None else None
            if refused is not None:
                self.report(refused, (*input_path, name), step.id)
                continue
            try:
                field_adapter(model, field.alias or attribute).validate_python(value)
            except ValidationError as exc:
                for error in plain_errors(exc.errors()):
                    at = (*input_path, name, *error["loc"])
                    if error["type"] == "extra_forbidden" and at in said:
                        continue
                    self.report(_pydantic_message(error), at, step.id)

    def _report_unknown_fields(
        self, step: StepSpec, model: type[BaseModel], raw: Mapping[str, Any], where: Path
    ) -> set[Path]:
        """Report the input's unknown fields; the paths reported."""
        said: set[Path] = set()
        for message, path in unknown_fields(step.type, model, raw, where):
            self.report(message, path, step.id, key=True)
            said.add(path)
        return said

    def _check_initial_values(self, spec: WorkflowSpec) -> None:
        """``variables`` and ``context`` are values, set before anything runs: a template
        there stayed as written (the text ``{{ input.a }}``). A variable is named as
        ``sys.set_variable`` names one: ``a.b`` was declared, and no step could set it."""
        if not checking_new():
            return
        for name in spec.variables:
            if not re.fullmatch(VARIABLE_NAME, name):
                self.report(
                    f"the name {name!r} cannot be a variable's: a name is letters, digits "
                    "and '_', not starting with a digit, as sys.set_variable takes it (and "
                    "variables.NAME reads it)",
                    ("variables", name),
                    key=True,
                )
        for field, values in (("variables", spec.variables), ("context", spec.context)):
            for path, text in template_strings(values, (field,)):
                instead = "a sys.set_variable step" if field == "variables" else "a step"
                self.report(
                    f"{field}: its values are set before anything runs, so {text!r} would "
                    f"stay as written; compute it in {instead} instead",
                    path,
                )

    def _check_input_schema(self, spec: WorkflowSpec) -> None:
        if spec.input_schema is None:
            return
        self._check_schema(spec.input_schema, ("input_schema",), None)

    def _check_schema(
        self, schema: Any, path: Path, step_id: str | None, *, checked: bool = False
    ) -> None:
        """Every problem of a JSON Schema in the definition, each at its own place
        (``output_schema.properties.a.type: 'strin' is not one of …``), and in a new one
        the rules of new schemas; ``checked``: already held to the meta-schema (by a step
        input's model). jsonschema is imported only for definitions that hold one."""
        found = [] if checked else schema_problems_of(schema, limit=_SCHEMA_PROBLEMS)
        if checking_new():
            found += new_schema_problems(schema)
        for where, message in found[:_SCHEMA_PROBLEMS]:
            self.report(f"not a valid JSON Schema: {message}", (*path, *where), step_id)

    def _variable_names(self, spec: WorkflowSpec) -> set[str]:
        names = set(spec.variables)
        for place in self.places.values():
            step_type = self.registry.get(place.spec.type)
            sets = step_type is not None and step_type.sets_variable
            if sets and isinstance(place.spec.input, Mapping):
                name = place.spec.input.get("name")
                if isinstance(name, str) and not contains_template(name):
                    names.add(name)
        return names

    # -- templates ----------------------------------------------------------------------------

    def _compile_step_templates(self, step: StepSpec, path: Path, checker: TypedReads) -> None:
        if isinstance(step.when, str):
            if not contains_template(step.when) and text_boolean(step.when) is None:
                self.report(
                    f'when must be true, false or a template like "{{{{ steps.check.output '
                    f'}}}}"; the text {step.when!r} would always hold',
                    (*path, "when"),
                    step.id,
                )
            self._compile_value(step.when, (*path, "when"), step.id, checker)
            self._one_expression((*path, "when"), "when", step.id)
        step_type = self.registry.get(step.type)
        late = _iteration_end(step_type, step.input)
        per_item = _per_item(step_type, step.input)
        if late is None and per_item is None:
            self._compile_value(step.input, (*path, "input"), step.id, checker)
        else:
            assert isinstance(step.input, Mapping)
            rest = {k: v for k, v in step.input.items() if k not in (late, per_item)}
            self._compile_value(rest, (*path, "input"), step.id, checker)
        if late is not None:
            # Read as the end of an iteration: the body's steps have run (see
            # ReferenceChecker.iteration_end).
            where = (*path, "input", late)
            referrer = checker.iteration_end(step.id)
            self._compile_value(step.input[late], where, step.id, checker, referrer=referrer)
            self._one_expression(where, late, step.id)
        if per_item is not None:  # read with loop.<step id> set (ReferenceChecker.per_item)
            where = (*path, "input", per_item)
            referrer = checker.per_item(step.id)
            self._compile_value(step.input[per_item], where, step.id, checker, referrer=referrer)
        if step.output_schema is not None:
            self._check_schema(step.output_schema, (*path, "output_schema"), step.id)
        if step.output_schema is not None and step_type is not None and checking_new():
            self._schema_within_model(step, step_type, path)
        if step_type is not None and checking_new():
            self._written_variable_name(step, step_type, path)
            self._no_idle_fields(step, step_type, path)
            self._input_schema_rules(step, step_type, path)
            self._whole_reads(step, step_type, path, checker)
            self._increment_value(step, step_type, path, checker)
        if step_type is not None and step_type.kind == StepKind.CONDITION:
            where = (*path, "input", "expression")
            self._one_expression(where, "expression", step.id)

    def _whole_reads(
        self, step: StepSpec, step_type: StepType, path: Path, checker: TypedReads
    ) -> None:
        """An input field given one bare read (``items: "{{ input.n }}"``) gets the value
        read: where the read's type is surely one the field refuses (an integer for a
        list), the step would fail at run time, so it is refused here. (A template with
        more in it may convert: only the bare read is known.)"""
        takes = fields_taking(step_type.input_model)
        if not takes or not isinstance(step.input, Mapping):
            return
        for name, value in step.input.items():
            field = takes.get(name)
            if field is None or not isinstance(value, str):
                continue
            where = (*path, "input", name)
            template = self.compiled_templates.get(where)
            if isinstance(template, BareTemplate):
                message = checker.whole_read_problem(template.references[0], name, field, step.id)
                if message:
                    self.report(message, where, step.id)

    def _increment_value(
        self, step: StepSpec, step_type: StepType, path: Path, checker: TypedReads
    ) -> None:
        """A variable's ``increment`` adds its ``value`` to the variable: a value that is
        surely not a number (a Decimal, which is text) would fail the step at run time.
        (The value is not typed by the input model: ``set`` takes anything.)"""
        given = step.input
        if not step_type.sets_variable or not isinstance(given, Mapping):
            return
        if given.get("op") != "increment" or "value" not in given:
            return
        where = (*path, "input", "value")
        template = self.compiled_templates.get(where)
        if template is None and isinstance(given["value"], str) and "{{" in given["value"]:
            return  # a template that did not compile: refused where it is
        message = checker.increment_problem(given["value"], template, step.id)
        if message:
            self.report(message, where, step.id)

    def _input_schema_rules(self, step: StepSpec, step_type: StepType, path: Path) -> None:
        """A schema written in a step's input (``sys.wait_for_input``'s ``schema``) is held
        to the rules of new schemas (RE2's patterns, references that resolve) as the
        definition's own are: whoever answers the step sends the value it is matched
        against. (Its other problems are the input model's.)"""
        field = step_type.output_schema_in_input
        if field is None or not isinstance(step.input, Mapping):
            return
        schema = step.input.get(field)
        if isinstance(schema, dict) and not has_template(schema):
            self._check_schema(schema, (*path, "input", field), step.id, checked=True)

    def _schema_within_model(self, step: StepSpec, step_type: StepType, path: Path) -> None:
        """An ``output_schema`` may narrow a typed output (an HTTP body's shape), not
        name fields its model never has: references to them would pass validation and
        fail when the step runs. The fields are named as the output is stored (by alias)."""
        properties = (step.output_schema or {}).get("properties")
        model = step_type.output_model
        if model is None or not isinstance(properties, dict):
            return
        if model.model_config.get("extra") == "allow":
            return
        stored = (step_type.output_json_schema() or {}).get("properties")
        fields = list(stored) if isinstance(stored, dict) else []
        for name in properties:
            if name not in fields:
                self.report(
                    f"output_schema names '{name}', which the output of {step.type} never "
                    f"has (its fields: {', '.join(fields)})",
                    (*path, "output_schema", "properties", name),
                    step.id,
                )

    def _written_variable_name(self, step: StepSpec, step_type: StepType, path: Path) -> None:
        """The variable a step sets, and how, are as written: every read of variables.NAME
        is checked against the names declared and set, so a name known only at run
        time could be set and never read; and what an op is given is checked against
        the op (a number to increment), so an op known only then is not checked."""
        if not step_type.sets_variable:
            return
        given = step.input if isinstance(step.input, Mapping) else {}
        for field, why in _WRITTEN_OUT:
            value = given.get(field)
            if isinstance(value, str) and contains_template(value):
                self.report(
                    f"{field} must be written out, not a template: {why}",
                    (*path, "input", field),
                    step.id,
                )

    def _no_idle_fields(self, step: StepSpec, step_type: StepType, path: Path) -> None:
        """Fields that would be accepted and do nothing: refused where they are written."""
        if step.retry is not None and step_type.kind in _RUN_ONCE:
            self.report(
                f"retry has no effect on a {step.type} step: it runs once (retry the "
                "steps it runs, or the execution with 'executions retry')",
                (*path, "retry"),
                step.id,
            )
        if step.retry is not None and step_type.never_completes and checking_new():
            # Its failure is not retryable; only new definitions: stored ones still load.
            self.report(
                f"retry has no effect on {step.type}: its failure is never retried (to "
                "try work again, put the retry on the step that does it)",
                (*path, "retry"),
                step.id,
            )
        if step.timeout is not None and step_type.timeout_has_no_effect:
            self.report(
                f"timeout has no effect on {step.type}: it waits its duration (bound a "
                "step with 'due' instead)",
                (*path, "timeout"),
                step.id,
            )

        idle_watch = _idle_heartbeat_timeout(step, step_type)
        if idle_watch is not None:
            self.report(idle_watch, (*path, "heartbeat_timeout"), step.id)

    def _one_expression(self, where: Path, field: str, step_id: str) -> None:
        """A condition that is a template must be one ``{{ … }}``: with text around it, it
        renders to text that is never ``false``, so it always holds."""
        template = self.compiled_templates.get(where)
        if template is not None and not template.native and checking_new():
            self.report(
                f"{field} must be exactly one {{{{ … }}}}: write the whole condition inside "
                "it, like {{ input.n > 5 }}; with text around a template it renders to "
                "text, which always holds",
                where,
                step_id,
            )

    def _compile_value(
        self,
        value: Any,
        path: Path,
        step_id: str | None,
        checker: TypedReads,
        *,
        referrer: str | None = None,
    ) -> bool:
        """Compile every template inside ``value``; report syntax and reference problems
        (the references as read by ``referrer``, by default the step ``step_id``)."""
        referrer = step_id if referrer is None else referrer
        ok = True
        if isinstance(value, str):
            if not contains_template(value):
                if "{%" in value:
                    self.report(
                        "Jinja statements ({% ... %}) are not supported in templates; "
                        "write one expression per {{ ... }} and use filters instead of loops",
                        path,
                        step_id,
                    )
                    return False
                return True
            try:
                template = self.templates.compile(value)
            except TemplateError as exc:
                self.report(exc.message, path, step_id)
                return False
            self.compiled_templates[path] = template
            checker.check(template, referrer, lambda msg: self.report(msg, path, step_id))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and contains_template(key) and checking_new():
                    # Keys are literal text: the template would stay as written.
                    self.report(
                        f"the key {key!r} holds a template, but keys are text as written; "
                        "to build keys, write the whole object inside one {{ … }}, like "
                        "{{ {'k' ~ loop.each.index: loop.each.item} }}",
                        (*path, key),
                        step_id,
                    )
                    ok = False
                ok = (
                    self._compile_value(item, (*path, key), step_id, checker, referrer=referrer)
                    and ok
                )
        elif isinstance(value, list):
            for i, item in enumerate(value):
                ok = (
                    self._compile_value(item, (*path, i), step_id, checker, referrer=referrer)
                    and ok
                )
        return ok

    # -- building -----------------------------------------------------------------------------

    def _build_graph(
        self, steps: Sequence[StepSpec], loop_id: str | None, scope: tuple[str, ...]
    ) -> tuple[CompiledGraph, dict[str, CompiledStep]]:
        shape = self.shapes[loop_id]
        below = self.post_dominated[loop_id]
        joins = first_joins(steps)
        built: dict[str, CompiledStep] = {}
        everything: dict[str, CompiledStep] = {}
        for step in steps:
            body = None
            if step.steps and self._has_body(step.type):
                body, inner = self._build_graph(step.steps, step.id, (*scope, step.id))
                everything.update(inner)
            path = self.paths[step.id]
            when = self.compiled_templates.get((*path, "when"))
            if when is None and step.when is not None:  # a literal: a boolean, or its text
                literal = step.when if isinstance(step.when, bool) else text_boolean(step.when)
                if literal is False:
                    when = self.templates.compile("{{ false }}")
            step_type = self.registry.get(step.type)
            assert step_type is not None  # unknown types were reported before building
            raw_input = {} if step.input is None else step.input
            late = _iteration_end(step_type, raw_input)
            iteration_end = None
            if late is not None:  # rendered by the driver, not with the input
                raw_input = {k: v for k, v in raw_input.items() if k != late}
                iteration_end = self.templates.compile(step.input[late])
            built[step.id] = CompiledStep(
                id=step.id,
                spec=step,
                step_type=step_type,
                source_path=path,
                scope=scope,
                predecessors=tuple(shape.predecessors[step.id]),
                successors=tuple(shape.successors[step.id]),
                when=when,
                branch=shape.branches.get(step.id),
                input=self.templates.compile_value(raw_input),
                body=body,
                iteration_end=iteration_end,
                raced=tuple(s for s in shape.successors[step.id] if s in joins),
                post_dominated=below.get(step.id, ()),
            )
        everything.update(built)
        return CompiledGraph(loop_id=loop_id, steps=built), everything


def _ordered(shape: GraphShape) -> list[str]:
    """The steps of a graph, each after its predecessors (Kahn's order; those on a cycle,
    refused elsewhere, last in list order)."""
    waiting = {sid: len(shape.predecessors.get(sid, [])) for sid in shape.order}
    ready = [sid for sid in reversed(shape.order) if waiting[sid] == 0]
    ordered: list[str] = []
    while ready:
        sid = ready.pop()
        ordered.append(sid)
        for successor in shape.successors.get(sid, []):
            waiting[successor] -= 1
            if waiting[successor] == 0:
                ready.append(successor)
    if len(ordered) < len(shape.order):
        seen = set(ordered)
        ordered += [sid for sid in shape.order if sid not in seen]
    return ordered


def _iteration_end(step_type: StepType | None, raw: Any) -> str | None:
    """The step's input field rendered at the end of each iteration, when it gives one
    (StepType.iteration_end_field: ``sys.loop``'s ``until``)."""
    field = step_type.iteration_end_field if step_type is not None else None
    if field is None or not isinstance(raw, Mapping) or not isinstance(raw.get(field), str):
        return None  # not a template: the input model refuses it
    return field


def _per_item(step_type: StepType | None, raw: Any) -> str | None:
    """The step's input field rendered once per item, with ``loop.<step id>`` set, when
    it gives items (StepKind.own_loop_frame: ``sys.sub_workflow``'s child ``input``,
    runtime/children.py); without items it renders once, with no such frame."""
    if step_type is None or not step_type.kind.own_loop_frame or not isinstance(raw, Mapping):
        return None
    return "input" if raw.get("items") is not None and "input" in raw else None


#: Structural kinds whose step runs once: a retry policy on them is never used.
_RUN_ONCE = frozenset({StepKind.LOOP, StepKind.SUB_WORKFLOW, StepKind.WAIT_FOR_INPUT})


def _idle_heartbeat_timeout(step: StepSpec, step_type: StepType) -> str | None:
    """Why the step's ``heartbeat_timeout`` would do nothing, or None: it watches a
    handler running as a task, which only a task kind that is neither pure nor a wait has,
    and its step's ``timeout`` must not end every attempt first."""
    watch = step.heartbeat_timeout
    if watch is None:
        return None
    if step_type.kind.structural or step_type.pure:
        return (
            f"heartbeat_timeout has no effect on {step.type}: it runs no handler of its own "
            "that could call ctx.heartbeat (bound it with 'timeout' or 'due' instead)"
        )
    if step_type.timeout_has_no_effect:
        return (
            f"heartbeat_timeout has no effect on {step.type}: it waits its duration (bound "
            "a step with 'due' instead)"
        )
    if step.timeout is not None and watch >= step.timeout:
        return (
            f"heartbeat_timeout ({spoken(watch)}) has no effect: it is not shorter than the "
            f"step's timeout ({spoken(step.timeout)}), which ends each attempt first"
        )
    return None


def _pydantic_message(error: Mapping[str, Any], known: Iterable[str] = ()) -> str:
    """A pydantic error in our words, its path relative to the step it is in (the
    problem already names the step): ``after: must be a list, not "a"``."""
    loc = tuple(error.get("loc", ()))
    start = 0
    while len(loc) > start + 2 and loc[start] == "steps" and isinstance(loc[start + 1], int):
        start += 2  # steps[0].steps[3].id: the step is named; the path goes on from it
    loc = loc[start:]
    kind = error.get("type")
    if kind == "extra_forbidden":
        if not loc:
            return "unknown field"
        fields = list(known) or _fields_at(tuple(error.get("loc", ())))
        # retry: unknown field 'max_attempt'; did you mean …? (its fields: …)
        said = unknown_field(loc[-1], fields) if fields else f"unknown field '{loc[-1]}'"
        parent = format_path(loc[:-1])
        return f"{parent + ': ' if parent else ''}{said}"
    if kind == "missing":
        return f"'{loc[-1]}' is required" if loc else "a required field is missing"
    pattern = (error.get("ctx") or {}).get("pattern")
    if loc and kind == "string_pattern_mismatch" and pattern == WORKFLOW_NAME_PATTERN:
        return f"{format_path(loc)}: {WORKFLOW_NAME_RULE} (not {error.get('input')!r})"
    if loc and loc[-1] == "id" and kind == "string_pattern_mismatch":
        return (
            f"a step id is lowercase letters, digits and '_', starting with a letter or '_' "
            f"(not {error.get('input')!r})"
        )
    message = field_message(error)
    if loc and message.startswith(f"{loc[-1]} "):  # "op must be one of …": named already
        parent = format_path(loc[:-1])
        return f"{parent}: {message}" if parent else message
    where = format_path(loc)
    return f"{where}: {message}" if where else message


def _fields_at(loc: Path) -> list[str]:
    """The fields a misspelt key could have meant: those of the model at ``loc[:-1]``
    (a step's, its ``retry``'s, the workflow's)."""
    model: Any = WorkflowSpec
    for segment in loc[:-1]:
        if isinstance(segment, int):
            model = _item_model(model)
        elif isinstance(model, type) and issubclass(model, BaseModel):
            field = next(
                (f for n, f in model.model_fields.items() if (f.alias or n) == segment), None
            )
            model = _item_model(field.annotation) if field is not None else None
        else:
            return []
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _item_model(annotation: Any) -> Any:
    """The model inside ``list[M]``, ``M | None`` or ``M`` (else the annotation)."""
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _item_model(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation

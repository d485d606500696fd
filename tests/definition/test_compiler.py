"""Validation before anything runs: every rule of SPEC §1, each error located and actionable."""

from __future__ import annotations

import textwrap
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field

from flowledger import DefinitionError, StepContext, StepRegistry, step_type
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.races import race_of
from flowledger.definition.strictness import stored_definitions
from flowledger.templates import TemplateEngine


class PingOutput(BaseModel):
    pong: str
    count: int


class PingInput(BaseModel):
    target: str


@step_type("acme.ping")
async def ping(data: PingInput, ctx: StepContext) -> PingOutput:
    return PingOutput(pong=data.target, count=1)


class Address(BaseModel):
    street: str = ""
    city: str = ""


class AliasedInput(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    body_text: str = Field(alias="bodyText")
    address: Address | None = None


@step_type("acme.aliased")
async def aliased(data: AliasedInput, ctx: StepContext) -> PingOutput:
    return PingOutput(pong=data.body_text, count=1)


def _registry() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    registry.register(ping)
    registry.register(aliased)
    return registry


def compile_yaml(text: str):  # type: ignore[no-untyped-def]
    return load_workflow_text(textwrap.dedent(text), _registry(), TemplateEngine(), "wf.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        compile_yaml(text)
    return [p.format() for p in info.value.problems]


def test_a_valid_definition_compiles_with_list_order_edges() -> None:
    wf = compile_yaml(
        """
        name: ok
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
          - {id: b, type: sys.transform, input: {value: "{{ steps.a.output }}"}}
          - {id: c, type: sys.transform, after: [], input: {value: 2}}
          - {id: d, type: sys.transform, after: [b, c], input: {value: 3}}
        """
    )
    preds = {sid: s.predecessors for sid, s in wf.graph.steps.items()}
    assert preds == {"a": (), "b": ("a",), "c": (), "d": ("b", "c")}


def test_then_else_replace_list_order_and_guard_on_the_result() -> None:
    wf = compile_yaml(
        """
        name: branches
        steps:
          - {id: check, type: sys.condition, input: {expression: "{{ 1 > 0 }}"}, then: [big], else: [small]}
          - {id: big, type: sys.no_action}
          - {id: small, type: sys.no_action}
        """
    )
    yes, no = wf.steps["big"], wf.steps["small"]
    assert yes.predecessors == ("check",) and no.predecessors == ("check",)
    assert yes.branch is not None and yes.branch.result is True
    assert no.branch is not None and no.branch.result is False


def test_every_problem_is_reported_at_once_with_file_line_and_step() -> None:
    found = problems(
        """
        name: broken
        steps:
          - id: a
            type: sys.transform
            input: {value: 1}
          - id: a
            type: sys.transform
            input: {value: 2}
          - id: b
            type: sys.nope
          - id: c
            type: sys.transform
            after: [ghost]
            input: {value: 3}
        """
    )
    text = "\n".join(found)
    assert "wf.yaml:7:" in text and "duplicate step id 'a'" in text
    assert "step 'b': type: unknown step type 'sys.nope'" in text
    assert "step 'c': after[0]: 'ghost' is not a step of this graph" in text
    assert len(found) == 3


def test_cycles_are_named() -> None:
    found = problems(
        """
        name: cyclic
        steps:
          - {id: a, type: sys.no_action, after: [b]}
          - {id: b, type: sys.no_action, after: [a]}
        """
    )
    assert any("cycle: a -> b -> a" in p or "cycle: b -> a -> b" in p for p in found)


def test_self_loop_is_refused() -> None:
    assert any(
        "cannot run after itself" in p
        for p in problems(
            """
        name: selfish
        steps:
          - {id: a, type: sys.no_action, after: [a]}
        """
        )
    )


def test_dangling_then_else() -> None:
    found = problems(
        """
        name: dangling
        steps:
          - {id: c, type: sys.condition, input: {expression: true}, then: [nowhere], else: [nope]}
        """
    )
    assert len(found) == 2 and all("is not a step of this graph" in p for p in found)


def test_then_on_a_non_condition_is_refused() -> None:
    assert any(
        "only allowed on sys.condition" in p
        for p in problems(
            """
        name: t
        steps:
          - {id: a, type: sys.no_action, then: [b]}
          - {id: b, type: sys.no_action}
        """
        )
    )


def test_builtin_input_is_checked_statically() -> None:
    found = problems(
        """
        name: inputs
        steps:
          - {id: a, type: sys.set_variable, input: {value: 1}}
          - {id: b, type: sys.loop, input: {items: [1], concurrency: many}, steps: [{id: x, type: sys.no_action}]}
          - {id: c, type: sys.http_request, input: {url: "https://x", retires: 3}}
          - {id: d, type: sys.delay, input: {duration: "{{ 5 }}", extra: 1}}
        """
    )
    text = "\n".join(found)
    assert "step 'a'" in text and "name" in text
    assert "step 'b'" in text and "concurrency" in text
    assert "step 'c'" in text and "retires" in text
    assert "step 'd'" in text and "extra" in text


def test_step_fields_are_checked() -> None:
    found = problems(
        """
        name: fields
        steps:
          - id: a
            type: sys.no_action
            retires: 3
            timeout: ten
            retry: {max_attempts: -1}
        """
    )
    text = "\n".join(found)
    assert "unknown field 'retires'" in text
    assert "timeout" in text and "not a duration" in text
    assert "max_attempts" in text


def test_a_misspelt_nested_field_is_named_with_its_path_and_a_suggestion() -> None:
    found = problems(
        """
        name: nested
        steps:
          - id: a
            type: sys.no_action
            retry: {max_attempt: 3}
          - id: l
            type: sys.loop
            input: {items: [1]}
            steps:
              - {id: x, type: sys.no_action, retry: {backof: fixed}}
        """
    )
    text = "\n".join(found)
    # Nested fields were named without their parent, and without a suggestion.
    assert "step 'a': retry: unknown field 'max_attempt'; did you mean 'max_attempts'?" in text
    assert "step 'x': retry: unknown field 'backof'; did you mean 'backoff'?" in text
    found = problems(
        """
        name: triggered
        triggers:
          - {type: schedule, cron: "0 * * * *", timezon: UTC}
          - {type: schedule, cron: 5}
        steps:
          - {id: a, type: sys.no_action}
        """
    )
    text = "\n".join(found)
    # A trigger's field was left out: "schedule trigger: is not a known field".
    assert "schedule trigger: unknown field 'timezon'; did you mean 'timezone'?" in text
    assert "triggers[1].cron: must be text, not 5" in text


def test_an_unknown_overlap_policy_is_refused_with_a_suggestion() -> None:
    [found] = problems(
        """
        name: overlapping
        triggers:
          - {type: schedule, cron: "0 * * * *", overlap: skipp}
        steps:
          - {id: a, type: sys.no_action}
        """
    )
    assert "triggers[0].overlap" in found
    assert (
        'overlap: must be one of allow, skip, cancel_previous, not "skipp"; '
        "did you mean 'skip'?" in found
    )


def test_bad_ids_are_refused() -> None:
    assert any(
        "id" in p
        for p in problems(
            """
        name: ids
        steps:
          - {id: Bad-Id, type: sys.no_action}
        """
        )
    )


def test_template_syntax_errors_are_located() -> None:
    found = problems(
        """
        name: syntax
        steps:
          - id: a
            type: sys.transform
            input: {value: "{{ 1 + }}"}
        """
    )
    assert len(found) == 1 and found[0].startswith("wf.yaml:6:") and "step 'a'" in found[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('"{{ steps.ghost.output }}"', "names no step"),
        ('"{{ steps.later.output }}"', "does not run before this step"),
        ('"{{ steps.a.output }}"', "cannot read its own output"),
        ('"{{ loop.items.index }}"', "not inside a loop named 'items'"),
        ('"{{ steps.body.output }}"', "runs inside loop 'each'"),
        ('"{{ steps.check.output.reslt }}"', "has no field 'reslt'"),
        ('"{{ steps.check.oput }}"', "has no field 'oput'"),
        ('"{{ steps.p.output.pongg }}"', "has no field 'pongg'"),
        ('"{{ steps.p.output.count.x }}"', "is an integer, so it has no field 'x'"),
        ('"{{ steps.shaped.output.missing }}"', "has no field 'missing'"),
        ('"{{ steps.t.output.b }}"', "has no field 'b'"),
        ('"{{ variables.nope }}"', "variables.nope does not exist"),
        ('"{{ inptu.x }}"', "unknown name 'inptu'"),
        ('"{{ input.regon }}"', "did you mean 'region'"),
        ('"{{ input.region.code }}"', "input.region is a string, so it has no field 'code'"),
        ('"{{ execution.bogus }}"', "execution.bogus does not exist"),
        ('"{{ steps.each.output.results[0].body.reason.x }}"', "has no field 'x'"),
    ],
)
def test_references_that_cannot_resolve_are_refused(body: str, expected: str) -> None:
    text = f"""
        name: refs
        input_schema: {{type: object, properties: {{region: {{type: string}}}}}}
        variables: {{known: 1}}
        steps:
          - {{id: check, type: sys.condition, input: {{expression: true}}}}
          - {{id: p, type: acme.ping, input: {{target: x}}}}
          - {{id: shaped, type: acme.ping, input: {{target: y}}, output_schema: {{type: object, properties: {{pong: {{type: string}}}}}}}}
          - {{id: t, type: sys.transform, input: {{value: {{a: 1}}}}}}
          - id: each
            type: sys.loop
            input: {{items: [1, 2]}}
            steps:
              - {{id: body, type: sys.no_action}}
          - {{id: a, type: sys.transform, input: {{value: {body}}}}}
          - {{id: later, type: sys.no_action}}
        """
    found = problems(text)
    assert len(found) == 1, found
    assert expected in found[0]
    assert "step 'a'" in found[0]


def test_references_that_resolve_are_accepted() -> None:
    wf = compile_yaml(
        """
        name: good_refs
        variables: {total: 0}
        steps:
          - {id: p, type: acme.ping, input: {target: x}}
          - id: each
            type: sys.loop
            input: {items: [1, 2]}
            steps:
              - {id: first, type: sys.transform, input: {value: "{{ loop.each.item + steps.p.output.count }}"}}
              - {id: second, type: sys.transform, input: {value: "{{ steps.first.output }} {{ loop.each.index }}"}}
              - {id: bump, type: sys.set_variable, input: {name: counter, op: increment}}
          - {id: after_loop, type: sys.transform, input: {value: "{{ steps.each.output.results[0].second }} {{ variables.counter }} {{ __steps__.p.outputData.pong }} {{ steps.p.status }}"}}
        """
    )
    assert set(wf.steps) == {"p", "each", "first", "second", "bump", "after_loop"}


def test_loop_needs_a_body_and_only_loops_have_one() -> None:
    found = problems(
        """
        name: bodies
        steps:
          - {id: l, type: sys.loop, input: {items: [1]}}
          - {id: plain, type: sys.no_action, steps: [{id: x, type: sys.no_action}]}
        """
    )
    text = "\n".join(found)
    assert "needs a body" in text and "only sys.loop steps have a body" in text


def test_invalid_input_schema_is_refused() -> None:
    assert any(
        "input_schema.type: not a valid JSON Schema: 'nonsense' is not one of ['array'" in p
        for p in problems(
            """
        name: schema
        input_schema: {type: nonsense}
        steps: [{id: a, type: sys.no_action}]
        """
        )
    )


def test_every_problem_of_an_output_schema_is_named_at_its_place() -> None:
    found = problems(
        """
        name: schema
        steps:
          - id: a
            type: sys.transform
            input: {value: 1}
            output_schema: {type: object, properties: {x: {type: strin}, y: {minimum: z}}}
        """
    )
    assert found == [
        "wf.yaml:7:58: step 'a': output_schema.properties.x.type: not a valid JSON Schema: "
        "'strin' is not one of ['array', 'boolean', 'integer', 'null', 'number', 'object', "
        "'string']",
        "wf.yaml:7:79: step 'a': output_schema.properties.y.minimum: not a valid JSON Schema: "
        "'z' is not of type 'number'",
    ]


def test_a_schemas_problems_are_each_said_once_with_its_patterns_and_references() -> None:
    """The meta-schema reaches some keywords by several ways: one bad value was said five
    times and pushed the others out; one backtracking pattern was said of several, none
    beside another problem; a reference to nothing passed."""
    text = """
        name: schema
        input_schema:
          type: object
          properties:
            a: {type: strin}
            p1: {type: string, pattern: "(a)\\\\1"}
            p2: {type: string, pattern: "^(?=a)"}
            p3: {type: string, pattern: "("}
            r: {$ref: "#/$defs/nope"}
          additionalProperties: 7
        steps: [{id: a, type: sys.no_action}]
        """
    found = [p.split(": ", 1)[1] for p in problems(text)]
    assert found == [
        "input_schema.properties.a.type: not a valid JSON Schema: 'strin' is not one of "
        "['array', 'boolean', 'integer', 'null', 'number', 'object', 'string']",
        'input_schema.properties.p1.pattern: not a valid JSON Schema: the pattern "(a)\\\\1" '
        "needs backtracking (a lookahead, lookbehind or backreference), which one value can "
        "make run for minutes; write it without them, or check the value in a step",
        'input_schema.properties.p2.pattern: not a valid JSON Schema: the pattern "^(?=a)" '
        "needs backtracking (a lookahead, lookbehind or backreference), which one value can "
        "make run for minutes; write it without them, or check the value in a step",
        "input_schema.properties.p3.pattern: not a valid JSON Schema: '(' is not a 'regex'",
        'input_schema.properties.r.$ref: not a valid JSON Schema: "#/$defs/nope" refers to '
        "nothing in the schema",
        "input_schema.additionalProperties: not a valid JSON Schema: 7 is not of type "
        "'object', 'boolean'",
    ]
    fixed = text.replace("{type: strin}", "{type: string}").replace("additionalProperties: 7", "")
    with stored_definitions():  # a version pushed before these rules still compiles
        assert compile_yaml(fixed.replace('pattern: "("', "minLength: 1")).name == "schema"


def test_a_union_field_is_said_once_in_the_users_words() -> None:
    [wrong_type] = problems(
        """
        name: u
        steps: [{id: q, type: sys.query_entity, input: {entity_type: lead, order_by: 5}}]
        """
    )
    assert wrong_type.endswith("step 'q': input.order_by: must be text or a list, not 5")
    [wrong_item] = problems(
        """
        name: u
        steps: [{id: q, type: sys.query_entity, input: {entity_type: lead, order_by: [a, 5]}}]
        """
    )
    assert wrong_item.endswith("step 'q': input.order_by[1]: must be text, not 5")


def test_a_broken_retry_or_timeout_does_not_hide_the_steps_other_problems() -> None:
    found = "\n".join(
        problems(
            """
        name: many
        steps:
          - id: l
            type: sys.loop
            timeout: zz
            input: {items: [1, 2]}
            steps:
              - id: b
                type: sys.transform
                retry: {max_attempts: x}
                input: {value: "{{ steps.nope.output }}"}
          - id: h
            type: sys.http_request
            after: [l]
            retry: {initial_delay: banana}
            input: {url: "http://x", method: FLY}
        """
        )
    )
    assert "step 'l': timeout:" in found
    assert "step 'b': retry.max_attempts: must be a whole number" in found
    assert "step 'b': input.value: steps.nope names no step of this workflow" in found
    assert "step 'h': retry.initial_delay:" in found
    assert "step 'h': input.method: must be one of GET" in found
    assert "needs a body" not in found


def test_same_document_same_checksum() -> None:
    text = """
        name: same
        steps: [{id: a, type: sys.no_action}]
        """
    assert compile_yaml(text).checksum == compile_yaml(text).checksum


def test_statements_without_expressions_are_refused_too() -> None:
    found = problems(
        """
        name: statements
        steps:
          - {id: a, type: sys.transform, input: {value: "{% for x in y %}{% endfor %}"}}
        """
    )
    assert len(found) == 1 and "statements" in found[0] and "step 'a'" in found[0]


def test_field_errors_do_not_hide_graph_and_reference_errors() -> None:
    found = problems(
        """
        name: many
        steps:
          - {id: a, type: sys.transform, retires: 3, input: {value: 1}}
          - {id: b, type: sys.transform, after: [a, ghost], input: {value: "{{ steps.a.output }}"}}
          - {id: c, type: sys.transform, input: {value: "{{ steps.nope.output }}"}}
          - {id: d, type: sys.transfrom}
        """
    )
    text = "\n".join(found)
    assert "unknown field 'retires'" in text  # the field error of step a
    assert "'ghost' is not a step of this graph" in text  # b's edge still checked
    assert "steps.nope names no step" in text  # c's references still checked
    assert "unknown step type 'sys.transfrom'" in text
    assert "did you mean 'sys.transform'? (load custom step types with --plugin" in text
    assert "steps.a" not in text  # a is a stand-in: reading it is not an error
    assert len(found) == 4


def test_a_step_without_a_usable_id_keeps_the_later_steps_problems_on_their_lines() -> None:
    """Such a step was dropped, and every later step's problems were named at the line
    of the step before it (step 'c''s edge on line 3, the bad step's)."""
    bad_id = problems(
        """
        name: shifted
        steps:
          - {id: A-b, type: sys.transform, after: [zz], input: {value: 1}}
          - {id: c, type: sys.transform, after: [ab], input: {value: 1}}
          - 5
          - {id: d, type: sys.transform, input: {value: "{{ steps.zz.output }}"}}
        """
    )
    assert [p.split(": ", 1)[0] for p in bad_id] == [
        "wf.yaml:4:10",  # the id itself
        "wf.yaml:4:44",  # its own after[0]: an id that breaks the rules is still a step
        "wf.yaml:5:42",  # c's after[0], on c's line (it was 4:...)
        "wf.yaml:6:5",  # the item that is no mapping
        "wf.yaml:7:49",  # d's reference, on d's line (it was 5:...)
    ], bad_id
    assert not any("#" in p for p in bad_id)  # the stand-ins' ids are named nowhere


def test_a_step_that_names_a_step_with_a_bad_id_gets_no_second_error() -> None:
    """The bad id is one problem, reported once; steps naming it (their ``after``, their
    templates) are not told it names no step, which would send the reader looking for a
    missing step."""
    found = problems(
        """
        name: named
        steps:
          - {id: Fetch-1, type: sys.transform, input: {value: 1}}
          - {id: b, type: sys.transform, after: [Fetch-1], input: {value: "{{ steps['Fetch-1'].output }}"}}
        """
    )
    assert len(found) == 1 and "step 'Fetch-1': id: a step id is" in found[0], found


def test_a_templated_sibling_does_not_change_how_a_literal_field_is_checked() -> None:
    text = """
        name: sibling
        steps:
          - {id: a, type: sys.http_request, input: {url: "{{ input.u }}", timeout: "3s"}}
          - {id: b, type: sys.http_request, input: {url: "https://x", timeout: "3s"}}
        """
    assert compile_yaml(text).steps["a"].spec.input == {"url": "{{ input.u }}", "timeout": "3s"}
    found = problems(text.replace('"3s"}}\n          - {id: b', '"-3s"}}\n          - {id: b'))
    assert len(found) == 1 and "step 'a'" in found[0] and "not a duration" in found[0]


def test_each_step_s_literal_is_checked_by_the_shared_field_validator() -> None:
    # One validator per step type and field serves every step: each value is its own.
    steps = "\n".join(
        f'  - {{id: s{i}, type: sys.http_request, input: {{url: "{{{{ input.u }}}}", '
        f'timeout: "{t}"}}}}'
        for i, t in enumerate(["3s", "ten", "5m", "-1s", "2h"])
    )
    found = problems(f"name: many\nsteps:\n{steps}\n")
    assert [("step 's1'" in p, "step 's3'" in p) for p in found] == [(True, False), (False, True)]


def test_a_when_that_is_neither_a_boolean_nor_a_template_is_refused() -> None:
    found = problems(
        'name: w\nsteps:\n  - {id: a, type: sys.transform, when: "sometimes", input: {value: 1}}\n'
    )
    assert any(
        "when must be true, false or a template" in p and "'sometimes' would always hold" in p
        for p in found
    ), found


def test_schemas_that_refer_out_of_themselves_are_refused_where_they_are() -> None:
    found = problems(
        """
        name: refs
        input_schema: {type: object, properties: {a: {$ref: "http://169.254.169.254/x"}}}
        steps:
          - id: ask
            type: sys.wait_for_input
            input: {prompt: p, schema: {properties: {u: {$ref: "file:///etc/passwd"}}}}
        """
    )
    text = "\n".join(found)
    assert ":3:" in text and '"http://169.254.169.254/x" refers out of the schema' in text
    assert "step 'ask'" in text and '"file:///etc/passwd" refers out of the schema' in text


def test_a_condition_with_text_around_its_template_is_refused() -> None:
    """'{{ input.n }} > 5' renders to the text "1 > 5", which holds: the wrong branch
    ran, silently. One {{ … }} (with spaces around it, too) is a condition."""
    found = problems(
        """
        name: w
        steps:
          - {id: c, type: sys.condition, input: {expression: "{{ input.n }} > 5"}, then: [a]}
          - {id: a, type: sys.transform, when: "{{ input.n }} > 5", input: {value: 1}}
          - {id: b, type: sys.transform, when: " {{ input.n > 5 }} ", input: {value: 1}}
          - {id: d, type: sys.condition, input: {expression: "{{ input.n > 5 }}"}}
        """
    )
    assert len(found) == 2, found
    assert "step 'c': input.expression must be exactly one {{ … }}" in found[0]
    assert "step 'a': when must be exactly one {{ … }}" in found[1]
    with stored_definitions():  # a version pushed before this rule still loads
        compile_yaml(
            'name: w\nsteps:\n  - {id: a, type: sys.transform, when: "{{ 1 }} > 5", '
            "input: {value: 1}}\n"
        )


def test_templates_where_they_would_stay_as_written_are_refused() -> None:
    """Keys, and the initial variables and context, are not rendered: the text
    "k{{ loop.each.index }}" became one key, overwritten by every iteration."""
    found = problems(
        """
        name: keys
        variables: {x: "{{ input.a }}", ok: 1}
        context: {c: ["{{ input.b }}"]}
        steps:
          - id: each
            type: sys.loop
            input: {items: [1, 2]}
            steps:
              - id: m
                type: sys.set_variable
                input: {name: ok, op: set, value: {"k{{ loop.each.index }}": 1}}
        """
    )
    text = "\n".join(found)
    assert len(found) == 3, found
    assert "variables.x: its values are set before anything runs" in text
    assert "context.c[0]: its values are set before anything runs" in text
    assert "step 'm': input.value: the key 'k{{ loop.each.index }}' holds a template" in text


def test_a_zero_timeout_and_a_default_the_schema_refuses_are_refused() -> None:
    found = problems(
        """
        name: odd
        steps:
          - {id: a, type: sys.transform, timeout: 0s, input: {value: 1}}
          - id: w
            type: sys.wait_for_input
            input:
              prompt: ok?
              schema: {type: object, properties: {ok: {type: boolean}}, additionalProperties: false}
              on_timeout: {default: {ok: maybe}}
        """
    )
    text = "\n".join(found)
    assert "step 'a': timeout: must be longer than 0" in text
    assert "step 'w': input: on_timeout.default does not match the schema" in text
    assert "default.ok: 'maybe' is not of type 'boolean'" in text


def test_an_output_schema_may_narrow_a_typed_output_but_not_invent_fields() -> None:
    """`{{ steps.r.output.stauts }}` passed validation through such a schema and failed
    when the step ran."""
    narrowed = """
        name: narrowed
        steps:
          - id: r
            type: sys.http_request
            input: {url: "http://example.com"}
            output_schema:
              type: object
              properties: {body: {type: object, properties: {id: {type: integer}}}%s}
          - {id: t, type: sys.transform, input: {value: "{{ steps.r.output.body.id }}"}}
        """
    compile_yaml(narrowed % "")
    found = problems(narrowed % ", stauts: {type: integer}")
    assert found == [
        "wf.yaml:9:85: step 'r': output_schema names 'stauts', which the output of "
        "sys.http_request never has (its fields: statusCode, headers, body, bodyEncoding)"
    ]


def test_fields_that_would_do_nothing_are_refused_where_they_are_written() -> None:
    """A retry on a loop, children or a wait, and a timeout on sys.delay, were accepted
    and never used."""
    found = problems(
        """
        name: idle
        steps:
          - id: each
            type: sys.loop
            retry: {max_attempts: 3}
            input: {items: [1]}
            steps:
              - {id: nap, type: sys.delay, timeout: 1s, input: {duration: 5s}}
          - {id: ask, type: sys.wait_for_input, retry: {max_attempts: 2}, input: {prompt: "?"}}
        """
    )
    assert found == [
        "wf.yaml:6:12: step 'each': retry has no effect on a sys.loop step: it runs once "
        "(retry the steps it runs, or the execution with 'executions retry')",
        "wf.yaml:9:45: step 'nap': timeout has no effect on sys.delay: it waits its duration "
        "(bound a step with 'due' instead)",
        "wf.yaml:10:48: step 'ask': retry has no effect on a sys.wait_for_input step: it "
        "runs once (retry the steps it runs, or the execution with 'executions retry')",
    ]


def test_a_heartbeat_timeout_that_would_do_nothing_is_refused_where_it_is_written() -> None:
    """It watches a handler running as a task: a structural, pure or waiting type has
    none, and a step's timeout no longer than it ends every attempt first."""
    found = problems(
        """
        name: idle
        steps:
          - {id: nap, type: sys.delay, heartbeat_timeout: 10s, input: {duration: 1s}}
          - {id: t, type: sys.transform, heartbeat_timeout: 10s, input: {value: 1}}
          - id: each
            type: sys.loop
            heartbeat_timeout: 10s
            input: {items: [1]}
            steps: [{id: x, type: sys.no_action}]
          - {id: p, type: acme.ping, timeout: 10s, heartbeat_timeout: 10s, input: {target: a}}
          - {id: q, type: acme.ping, heartbeat_timeout: 0s, input: {target: a}}
          - {id: r, type: acme.ping, heartbeat_timeout: "{{ input.t }}", input: {target: a}}
        """
    )
    anywhere = "(bound it with 'timeout' or 'due' instead)"
    assert found == [
        "wf.yaml:4:51: step 'nap': heartbeat_timeout has no effect on sys.delay: it waits its "
        "duration (bound a step with 'due' instead)",
        "wf.yaml:5:53: step 't': heartbeat_timeout has no effect on sys.transform: it runs no "
        f"handler of its own that could call ctx.heartbeat {anywhere}",
        "wf.yaml:8:24: step 'each': heartbeat_timeout has no effect on sys.loop: it runs no "
        f"handler of its own that could call ctx.heartbeat {anywhere}",
        "wf.yaml:11:63: step 'p': heartbeat_timeout (10s) has no effect: it is not shorter "
        "than the step's timeout (10s), which ends each attempt first",
        "wf.yaml:12:49: step 'q': heartbeat_timeout: must be longer than 0 (leave it out for "
        "no timeout)",
        "wf.yaml:13:49: step 'r': heartbeat_timeout: is read before the run and takes a fixed "
        "duration, not a template",
    ]
    compile_yaml(
        """
        name: watched
        steps:
          - {id: p, type: acme.ping, timeout: 10s, heartbeat_timeout: 9s, input: {target: a}}
        """
    )


def test_a_join_first_with_nothing_to_race_is_refused_and_its_race_is_found() -> None:
    found = problems(
        """
        name: lone
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
          - {id: b, type: sys.transform, join: first, input: {value: 2}}
          - {id: c, type: sys.transform, after: [], join: first, input: {value: 3}}
          - {id: d, type: sys.transform, join: any, input: {value: 4}}
          - {id: e, type: sys.condition, input: {expression: "{{ true }}"}, then: [f]}
          - {id: f, type: sys.transform, after: [a], join: first, input: {value: 5}}
        """
    )
    assert found == [
        "wf.yaml:5:40: step 'b': join: first has nothing to race: the step runs only after "
        "'a'; list two or more steps in its after (the first to complete releases it)",
        "wf.yaml:6:51: step 'c': join: first has nothing to race: the step runs after no "
        "step; list two or more steps in its after (the first to complete releases it)",
        "wf.yaml:7:40: step 'd': join: must be one of all, first, not \"any\"",
        "wf.yaml:9:52: step 'f': join: first cannot be on a then/else branch of 'e': the "
        "branch runs only once its condition has; race the steps before the condition "
        "instead",
    ]
    wf = compile_yaml(
        """
        name: raced
        steps:
          - {id: root, type: sys.transform, input: {value: 0}}
          - {id: a, type: sys.transform, after: [root], input: {value: 1}}
          - {id: b1, type: sys.transform, after: [root], input: {value: 2}}
          - {id: b2, type: sys.transform, after: [b1], input: {value: 3}}
          - {id: shared, type: sys.transform, after: [root], input: {value: 4}}
          - {id: elsewhere, type: sys.transform, after: [shared], input: {value: 5}}
          - {id: j, type: sys.transform, after: [a, b2, shared], join: first, input: {value: 6}}
        """
    )
    # Every path from these leads into j; 'shared' (and 'root' through it) also feeds
    # 'elsewhere'.
    assert race_of(wf.steps["j"], wf.graph.steps) == ["a", "b2", "b1"]
    assert wf.steps["a"].raced == ("j",) and wf.steps["a"].released == ()
    assert wf.steps["shared"].released == ("elsewhere",) and wf.steps["shared"].raced == ("j",)
    assert race_of(wf.steps["root"], wf.graph.steps) == [] and wf.steps["root"].raced == ()


def test_races_are_found_in_near_linear_time() -> None:
    """A thousand joins over 4,000 steps: checking each join against every step was
    quadratic (8 s for 1,000 joins over 10,000 steps); the post-dominator tree is built
    once, one edge per step. Counted, not timed."""
    steps = ["name: many", "steps:", "  - {id: s0, type: sys.transform, input: {value: 0}}"]
    for i in range(1, 4000):
        join = ", join: first" if i % 4 == 0 else ""
        after = f"[s{i - 1}, s{i - 2}]" if join else f"[s{i - 1}]"
        steps.append(
            f"  - {{id: s{i}, type: sys.transform, after: {after}{join}, input: {{value: 0}}}}"
        )
    wf = compile_yaml("\n".join(steps) + "\n")
    last = wf.steps["s3996"]
    # Every step before it leads only into it (a chain): its race is all of them.
    assert len(race_of(last, wf.graph.steps)) == 3996
    # Each step is some join's child at most once: the tree holds n - 1 edges at most.
    assert sum(len(s.post_dominated) for s in wf.graph.steps.values()) <= len(wf.graph.steps)


def test_a_retry_on_sys_fail_is_refused_in_new_definitions_only() -> None:
    """sys.fail's failure is never retried: its retry policy was accepted and unused."""
    text = """
        name: failing
        steps:
          - {id: stop, type: sys.fail, continue_on_error: true, retry: {max_attempts: 3}}
        """
    assert problems(text) == [
        "wf.yaml:4:64: step 'stop': retry has no effect on sys.fail: its failure is never "
        "retried (to try work again, put the retry on the step that does it)"
    ]
    with stored_definitions():  # a version pushed before this rule still loads
        assert compile_yaml(text).steps["stop"].spec.retry is not None


def test_a_pattern_that_backtracks_is_refused_in_new_definitions_only() -> None:
    text = """
        name: rx
        input_schema:
          type: object
          properties: {u: {type: string, pattern: "^(?=[a-z])(a+)+$"}}
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
        """
    [found] = problems(text)
    assert "input_schema.properties.u.pattern: not a valid JSON Schema: the pattern" in found
    assert "needs backtracking" in found
    with stored_definitions():  # a version pushed before the rule still compiles
        assert compile_yaml(text).name == "rx"


def test_a_waiting_steps_schema_is_held_to_the_same_patterns() -> None:
    """Whoever answers the step sends the value the pattern runs on."""
    text = """
        name: ask
        steps:
          - id: ask
            type: sys.wait_for_input
            input:
              prompt: ok?
              schema: {type: object, properties: {x: {type: string, pattern: "^(?=a)a+$"}}}
        """
    [found] = problems(text)
    assert "step 'ask': input.schema.properties.x.pattern: not a valid JSON Schema" in found
    assert "needs backtracking" in found
    with stored_definitions():
        assert compile_yaml(text).name == "ask"


def test_a_step_in_nested_loops_is_read_through_each_loop() -> None:
    """The advice named the outermost loop only (results[i].ok_inner), which then failed:
    each iteration's result holds the inner loop's output, not the step's."""
    text = """
        name: nested
        steps:
          - id: outer
            type: sys.loop
            input: {items: [1]}
            steps:
              - id: inner_loop
                type: sys.loop
                input: {items: [1]}
                steps:
                  - {id: ok_inner, type: sys.transform, input: {value: 1}}
          - {id: tail, type: sys.transform, input: {value: "{{ steps.ok_inner.output }}"}}
        """
    [problem] = problems(text)
    advised = "steps.outer.output.results[i].inner_loop.results[j].ok_inner"
    assert problem.endswith(f"from outside the loop read {advised}"), problem
    compile_yaml(
        text.replace("steps.ok_inner.output", advised.replace("[i]", "[0]").replace("[j]", "[0]"))
    )


def test_a_custom_steps_unknown_input_field_is_refused_as_a_built_ins_is() -> None:
    """A plugin's input model that says nothing of extra fields (pydantic ignores them,
    as the README's example writes one) took ``tagret`` for ``target`` as unwritten."""
    for value in ("x", "'{{ input.t }}'"):
        found = problems(
            f"""
            name: typo
            steps:
              - {{id: p, type: acme.ping, input: {{target: x, tagret: {value}}}}}
            """
        )
        assert len(found) == 1, found
        assert "unknown input field 'tagret' for acme.ping; did you mean 'target'?" in found[0]
    # A stored version with such a field was accepted before this rule: it still compiles.
    with stored_definitions():
        compile_yaml(
            """
            name: typo
            steps:
              - {id: p, type: acme.ping, input: {target: x, tagret: x}}
            """
        )


def test_a_boolean_where_a_number_goes_is_refused() -> None:
    """pydantic read ``true`` as 1: ``concurrency: true`` ran a loop one at a time."""
    text = """
        name: booly
        steps:
          - id: each
            type: sys.loop
            input: {items: "{{ [1, 2] }}", concurrency: true}
            steps:
              - {id: x, type: sys.no_action}
          - {id: kid, type: sys.sub_workflow, input: {workflow: other, version: false}}
          - {id: again, type: sys.no_action, retry: {max_attempts: true}}
        """
    found = problems(text)
    assert sorted(p.split(": ", 1)[1] for p in found) == [
        "step 'again': retry.max_attempts: must be a number, not true",
        "step 'each': input.concurrency: must be a number, not true",
        "step 'kid': input.version: must be a number, not false",
    ], found
    with stored_definitions():  # a version pushed before this rule still compiles
        compile_yaml(text)


def test_a_condition_that_names_itself_as_a_branch_is_told_so_at_the_entry() -> None:
    """It was "after: a step cannot run after itself", on the id line of a step that
    wrote no after."""
    found = problems(
        """
        name: selfy
        steps:
          - id: c2
            type: sys.condition
            input: {expression: "{{ true }}"}
            else: [c2]
        """
    )
    assert found == [
        "wf.yaml:7:12: step 'c2': else[0]: a condition cannot be its own 'else' branch"
    ]


def test_a_model_that_takes_fields_by_name_too_has_them_known_by_name() -> None:
    """Known only by their aliases, ``body_text`` was refused ("did you mean 'bodyText'")
    for a model with populate_by_name, which pydantic takes."""
    for name in ("body_text", "bodyText"):
        compile_yaml(
            f"""
            name: by-name
            steps:
              - {{id: a, type: acme.aliased, input: {{{name}: hi}}}}
            """
        )
    found = problems(
        """
        name: by-name
        steps:
          - {id: a, type: acme.aliased, input: {body_text: hi, bdy_text: x}}
        """
    )
    assert len(found) == 1 and "unknown input field 'bdy_text'" in found[0], found


def test_a_nested_models_unknown_field_is_refused_too() -> None:
    """A typo'd ``cty`` in a plugin input's nested model left ``city`` empty, unsaid."""
    for value in ("x", "'{{ input.c }}'"):
        found = problems(
            f"""
            name: nested
            steps:
              - {{id: a, type: acme.aliased, input: {{body_text: hi, address: {{cty: {value}}}}}}}
            """
        )
        assert len(found) == 1, found
        assert (
            "input.address: unknown field 'cty' for acme.aliased; did you mean 'city'?"
            in (found[0])
        )


def test_a_registry_without_the_built_ins_says_so() -> None:
    """It said "register custom types with --plugin" (a CLI flag, in a library) to a
    caller whose StepRegistry() had no built-in types at all."""
    text = "name: w\nsteps: [{id: a, type: sys.transform}]\n"
    with pytest.raises(DefinitionError) as raised:
        load_workflow_text(text, StepRegistry(), TemplateEngine())
    assert "StepRegistry.with_builtins()" in str(raised.value)


class OpenAddress(BaseModel):
    model_config = ConfigDict(extra="allow")
    street: str = ""


class Tagged(BaseModel):
    tags: list[Address] = []
    by_name: dict[str, Address] = {}
    open_list: list[OpenAddress] = []


@step_type("acme.tagged")
async def tagged(data: Tagged, ctx: StepContext) -> PingOutput:
    return PingOutput(pong=str(len(data.tags)), count=1)


def test_models_in_a_list_or_a_mapping_are_held_to_their_fields() -> None:
    """``tags: [{street: s, zip: 1}]`` for a ``list[Address]`` ran with ``zip`` dropped,
    unsaid (tour 17): only a model held directly was checked."""
    registry = _registry()
    registry.register(tagged)
    text = """
        name: lists
        steps:
          - id: a
            type: acme.tagged
            input:
              tags: [{street: s}, {street: t, cty: c}]
              by_name: {home: {stret: s}, work: "{{ input.w }}"}
              open_list: [{anything: 1}]
        """
    with pytest.raises(DefinitionError) as raised:
        load_workflow_text(textwrap.dedent(text), registry, TemplateEngine(), "wf.yaml")
    found = [p.format() for p in raised.value.problems]
    assert len(found) == 2, found
    assert (
        "input.tags[1]: unknown field 'cty' for acme.tagged; did you mean 'city'?" in (found[0])
    ), found
    assert "input.by_name.home: unknown field 'stret' for acme.tagged" in found[1], found


class Card(BaseModel):
    kind: Literal["card"] = "card"
    number: str
    holder: str = ""


class Bank(BaseModel):
    kind: Literal["bank"] = "bank"
    iban: str
    holder: str = ""


class Paying(BaseModel):
    method: Card | Bank | None = None
    backup: Optional[Union[Card, Bank]] = None  # noqa: UP007, UP045 (the spelling is the test)
    methods: list[Card | Bank] = []
    tagged: Annotated[Card | Bank, Field(discriminator="kind")] | None = None
    open: Card | OpenAddress | None = None
    loose: Card | dict[str, Any] | None = None
    code: Card | str | None = None
    note: str = ""


@step_type("acme.paying")
async def paying(data: Paying, ctx: StepContext) -> PingOutput:
    return PingOutput(pong="", count=1)


def _paying(given: str) -> list[str]:
    registry = _registry()
    registry.register(paying)
    text = f"""
        name: unions
        steps:
          - {{id: a, type: acme.paying, input: {given}}}
        """
    try:
        load_workflow_text(textwrap.dedent(text), registry, TemplateEngine(), "wf.yaml")
    except DefinitionError as exc:
        return [p.format() for p in exc.problems]
    return []


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # Only a Card has a 'number' (a Bank needs 'iban'): held to the Card's fields.
        ("{method: {number: '1', holdr: x}}", "input.method: unknown field 'holdr'"),
        ("{method: {iban: x, nmber: '1'}}", "input.method: unknown field 'nmber'"),
        ("{backup: {number: '1', cty: x}}", "input.backup: unknown field 'cty'"),
        ("{methods: [{number: '1'}, {iban: x, holdr: y}]}", "input.methods[1]: unknown field"),
        ("{tagged: {kind: card, number: '1', iban: x}}", "input.tagged: unknown field 'iban'"),
        ("{code: {number: '1', holdr: x}}", "input.code: unknown field 'holdr'"),
    ],
)
def test_a_model_in_a_union_is_held_to_its_fields(given: str, expected: str) -> None:
    """``method: {number: '1', holdr: x}`` for ``Card | Bank`` validated as a Card with
    ``holder`` empty, unsaid: only a model held alone, or in a list or a mapping, was
    checked. The value must fit one member: the members it cannot be (a required field
    it lacks, another ``kind``) are left out, and the problems named are the closest
    member's."""
    for variant in (given, given.replace("{", "{note: '{{ input.o }}', ", 1)):
        found = _paying(variant)
        assert len(found) == 1, (variant, found)
        assert expected in found[0], found
    with stored_definitions():  # a new rule: a stored version compiles as before
        registry = _registry()
        registry.register(paying)
        text = f"name: unions\nsteps:\n  - {{id: a, type: acme.paying, input: {given}}}\n"
        load_workflow_text(text, registry, TemplateEngine(), "wf.yaml")


def test_the_message_of_a_union_names_the_member_and_its_fields() -> None:
    """A value that is neither (it lacks both 'number' and 'iban', as pydantic says) is
    told of the closest member, the first of those as close."""
    *missing, problem = _paying("{note: '{{ input.o }}', method: {holder: x, nmber: '1'}}")
    assert [m.split(": ", 2)[2] for m in missing] == [
        "input.method.number is required",
        "input.method.iban is required",
    ], missing
    assert problem.endswith(
        "input.method: unknown field 'nmber' for acme.paying; did you mean 'number'? "
        "(as a Card, its fields: kind, number, holder; it fits none of Card, Bank)"
    ), problem


@pytest.mark.parametrize(
    "given",
    [
        "{method: {number: '1', holder: x}}",
        "{method: {kind: bank, iban: x}}",
        "{methods: [{number: '1'}, {iban: x}], backup: {iban: '{{ input.i }}'}}",
        "{open: {anything: 1}}",  # an OpenAddress takes any field
        "{loose: {anything: 1}}",  # so does a dict
        "{code: abc}",
        "{method: '{{ input.m }}'}",
    ],
)
def test_a_value_that_fits_one_member_of_a_union_compiles(given: str) -> None:
    assert _paying(given) == []


def test_a_template_in_a_steps_due_or_timeout_says_where_a_computed_deadline_goes() -> None:
    """``due: "{{ input.approve_within }}"`` said only '"{{ ... }}" is not a duration'
    (tour 20B), though sys.wait_for_input's input.due takes one."""
    for field in ("due", "timeout"):
        found = problems(
            f"""
            name: deadline
            steps:
              - id: confirm
                type: sys.wait_for_input
                {field}: "{{{{ input.within }}}}"
                input: {{prompt: ok?}}
            """
        )
        assert len(found) == 1, found
        assert f"step 'confirm': {field}: is read before the run" in found[0], found
        assert ("input.due" in found[0]) == (field == "due"), found
    compile_yaml(
        """
        name: deadline
        steps:
          - {id: confirm, type: sys.wait_for_input, input: {prompt: ok?, due: "{{ input.w }}"}}
        """
    )


@pytest.mark.parametrize(
    ("loop_input", "where", "expected"),
    [
        # items and until together, or neither: with templates the model cannot run yet
        (
            '{items: "{{ [1] }}", until: "{{ true }}", max_iterations: 2}',
            "input",
            "exactly one of 'items'",
        ),
        ("{concurrency: 1}", "input", "exactly one of 'items'"),
        ('{concurrency: "{{ 2 }}"}', "input", "exactly one of 'items'"),
        ('{until: "{{ steps.b.output }}"}', "input", "needs max_iterations"),
        (
            '{until: "{{ steps.b.output }}", max_iterations: 3, concurrency: 4}',
            "input.concurrency",
            "concurrency must be 1, not 4",
        ),
        (
            '{until: "{{ steps.b.output }}", max_iterations: 0}',
            "input.max_iterations",
            "must be at least 1, not 0",
        ),
        (
            '{until: "{{ steps.b.output }}", max_iterations: 10001}',
            "input.max_iterations",
            "must be at most 10000, not 10001",
        ),
        (
            '{items: "{{ input.xs }}", max_iterations: 3}',
            "input.max_iterations",
            "bounds a loop with 'until'",
        ),
        # a template that reads nothing is its value: checked as the literal below is
        ('{items: "{{ [1] }}", max_iterations: 3}', "input", "bounds a loop with 'until'"),
        ("{items: [1], max_iterations: 3}", "input", "bounds a loop with 'until'"),
        (
            "{until: true, max_iterations: 3}",
            "input.until",
            "until must be a template of a condition",
        ),
        (
            '{until: "done", max_iterations: 3}',
            "input.until",
            "until must be a template of a condition",
        ),
        (
            '{until: "done: {{ steps.b.output }}", max_iterations: 3}',
            "input.until",
            "exactly one {{ … }}",
        ),
    ],
)
def test_a_loop_takes_items_or_until_and_until_is_bounded_and_sequential(
    loop_input: str, where: str, expected: str
) -> None:
    found = problems(
        f"""
        name: until_rules
        steps:
          - id: poll
            type: sys.loop
            input: {loop_input}
            steps:
              - {{id: b, type: sys.transform, input: {{value: true}}}}
        """
    )
    assert len(found) == 1, found
    assert found[0].startswith("wf.yaml:6:") and "step 'poll'" in found[0], found
    assert f"{where}: " in found[0] or f"{where} " in found[0], found
    assert expected in found[0], found


def test_until_is_left_out_of_the_input_and_compiled_for_the_end_of_an_iteration() -> None:
    wf = compile_yaml(
        """
        name: until_compiled
        steps:
          - id: poll
            type: sys.loop
            input: {until: "{{ steps.b.output }}", max_iterations: 3}
            steps:
              - {id: b, type: sys.transform, input: {value: true}}
        """
    )
    poll = wf.steps["poll"]
    assert poll.input.render({}) == {"max_iterations": 3}  # rendered at the start: no until
    assert poll.iteration_end is not None
    assert poll.iteration_end.source == "{{ steps.b.output }}"
    assert wf.steps["b"].iteration_end is None


def test_a_variable_is_named_as_written_and_alike_wherever_it_is_named() -> None:
    """A templated name ran, and every read of the variable was refused ("variables.dyn
    does not exist"); ``variables: {a.b: 1}`` was declared, though no step could set it."""
    text = """
        name: names
        variables: {"a.b": 1, ok_1: 2, "with space": 3}
        steps:
          - {id: s, type: sys.set_variable, input: {name: "{{ 'dyn' }}", value: 1}}
          - {id: t, type: sys.set_variable, input: {name: ok_1, value: "{{ 'x' }}"}}
        """
    found = problems(text)
    assert len(found) == 3, found
    assert found[0].startswith("wf.yaml:3:13: variables: the name 'a.b' cannot be a variable's")
    assert "letters, digits and '_', not starting with a digit" in found[0]
    assert found[1].startswith("wf.yaml:3:32: variables: the name 'with space' cannot be")
    assert found[2].startswith("wf.yaml:5:51: step 's': input.name must be written out, not")
    assert "keep the values in one object variable (op: merge" in found[2]
    with stored_definitions():  # a version pushed before these rules still compiles
        compile_yaml(text)


def test_a_variable_op_is_written_out_not_a_template() -> None:
    """``op: "{{ input.o }}"`` passed validate, and the checks of what an op is given
    (an increment by a number) then had no op to check against: the step failed at
    run time. Refused as a templated name is; a stored version still compiles."""
    text = """
        name: ops
        input_schema: {type: object, properties: {o: {type: string}}}
        variables: {c: 0}
        steps:
          - {id: s, type: sys.set_variable, input: {name: c, op: "{{ input.o }}", value: x}}
          - {id: t, type: sys.set_variable, input: {name: c, op: "{{ 'set' }}", value: 1}}
        """
    found = problems(text)
    assert len(found) == 2, found
    assert found[0].startswith("wf.yaml:6:58: step 's': input.op must be written out, not a")
    assert "choose between them with a sys.condition's then and else" in found[0]
    assert found[1].startswith("wf.yaml:7:58: step 't': input.op must be written out"), found
    with stored_definitions():  # a version pushed before this rule still compiles
        compile_yaml(text)


def test_an_increment_by_a_literal_that_is_not_a_number_is_refused() -> None:
    """It failed at run time: "cannot increment variable 'c': ... the value is bool"."""
    text = """
        name: inc
        variables: {c: 0}
        steps:
          - {id: a, type: sys.set_variable, input: {name: c, op: increment, value: true}}
          - {id: b, type: sys.set_variable, input: {name: c, op: increment, value: "2"}}
          - {id: c, type: sys.set_variable, input: {name: c, op: increment, value: 2.5}}
          - {id: d, type: sys.set_variable, input: {name: c, op: increment}}
          - {id: e, type: sys.set_variable, input: {name: c, op: set, value: true}}
        """
    found = problems(text)
    assert [p.split(": ", 1)[1] for p in found] == [
        "step 'a': input: increment takes a number as its value, not true",
        "step 'b': input: increment takes a number as its value, not '2'",
    ], found
    with stored_definitions():
        compile_yaml(text)


def test_a_merge_of_a_literal_that_is_not_an_object_is_refused() -> None:
    """It failed at run time: "cannot merge into variable 'o': both it and the value must
    be objects". A templated value is not known before the run, and passes."""
    text = """
        name: merge
        variables: {o: {}}
        steps:
          - {id: a, type: sys.set_variable, input: {name: o, op: merge, value: 3}}
          - {id: b, type: sys.set_variable, input: {name: o, op: merge, value: [1, 2]}}
          - {id: c, type: sys.set_variable, input: {name: o, op: merge, value: "k"}}
          - {id: d, type: sys.set_variable, input: {name: o, op: merge, value: null}}
          - {id: e, type: sys.set_variable, input: {name: o, op: merge}}
          - {id: f, type: sys.set_variable, input: {name: o, op: merge, value: true}}
          - {id: g, type: sys.set_variable, input: {name: o, op: merge, value: {k: 1}}}
          - {id: h, type: sys.set_variable, input: {name: o, op: merge, value: "{{ input.v }}"}}
          - {id: i, type: sys.set_variable, input: {name: o, op: set, value: 3}}
        """
    found = problems(text)
    assert [p.split(": ", 1)[1] for p in found] == [
        "step 'a': input: merge takes an object as its value, not a number (3)",
        "step 'b': input: merge takes an object as its value, not a list",
        "step 'c': input: merge takes an object as its value, not text ('k')",
        "step 'd': input: merge takes an object as its value, not null",
        "step 'e': input: merge takes an object as its value, and none is given",
        "step 'f': input: merge takes an object as its value, not a boolean (true)",
    ], found
    with stored_definitions():  # a new rule: a stored version compiles as before
        compile_yaml(text)

"""Job-run files (SPEC §7): their shape, and errors located at file:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowledger.definition.jobs import load_job_file, parse_job_text
from flowledger.errors import DefinitionError

REPO = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse_job_text(textwrap.dedent(text).lstrip(), "job.yaml")
    return [p.format() for p in caught.value.problems]


def test_the_spec_example_loads() -> None:
    job = parse_job_text(
        textwrap.dedent(
            """
            name: nightly-sync
            continue_on_failure: false
            workflows:
              - {workflow: examples/import.yaml, input: {day: "2026-11-21"}}
              - {workflow: reconcile}
            """
        )
    )
    assert job.spec.name == "nightly-sync"
    assert job.spec.continue_on_failure is False
    assert [(w.workflow, w.input) for w in job.spec.workflows] == [
        ("examples/import.yaml", {"day": "2026-11-21"}),
        ("reconcile", {}),
    ]
    assert job.folder is None


def test_a_file_remembers_its_folder_and_json_works_too(tmp_path: Path) -> None:
    (tmp_path / "job.json").write_text('{"name": "j", "workflows": [{"workflow": "a.yaml"}]}')
    job = load_job_file(tmp_path / "job.json")
    assert job.folder == tmp_path
    assert job.spec.workflows[0].workflow == "a.yaml"


def test_the_example_job_file_is_valid() -> None:
    job = load_job_file(REPO / "examples" / "nightly_job.yaml")
    assert [w.workflow for w in job.spec.workflows] == ["hello.yaml", "order_pipeline.yaml"]
    assert all((REPO / "examples" / w.workflow).is_file() for w in job.spec.workflows)


def test_every_problem_is_reported_with_its_place() -> None:
    assert problems(
        """
        name: 'two words'
        continue_on_failure: 1
        workflows:
          - {workflow: a.yaml, inputs: {}}
          - {input: {x: 1}}
          - {workflow: b, input: [1, 2]}
        extra: true
        """
    ) == [
        "job.yaml:1:7: name: use letters, digits, '_', '.' and '-', starting with a letter "
        "or a digit",
        "job.yaml:2:22: continue_on_failure: must be true or false, not 1",
        "job.yaml:4:24: workflows[0]: unknown field 'inputs'; did you mean 'input'? "
        "(its fields: workflow, input)",
        "job.yaml:5:5: workflows[1].workflow is required",
        "job.yaml:6:26: workflows[2].input: must be a mapping, not [1, 2]",
        "job.yaml:7:1: unknown field 'extra' (its fields: name, description, "
        "continue_on_failure, workflows)",
    ]


def test_unknown_fields_named_like_types_are_unknown_fields() -> None:
    """Two of them were read as a union's branches and crashed the check (API fuzz)."""
    assert problems("name: x\nNope: 1\nUSERNAME: 2\nworkflows: [{workflow: a, Str: 1}]\n") == [
        "job.yaml:2:1: unknown field 'Nope' (its fields: name, description, "
        "continue_on_failure, workflows)",
        "job.yaml:3:1: unknown field 'USERNAME' (its fields: name, description, "
        "continue_on_failure, workflows)",
        "job.yaml:4:27: workflows[0]: unknown field 'Str' (its fields: workflow, input)",
    ]


def test_a_job_needs_workflows() -> None:
    assert problems("name: empty\nworkflows: []\n") == [
        "job.yaml:2:12: workflows: list at least one workflow to run"
    ]
    assert problems("name: none\n") == [
        "job.yaml:1:1: 'workflows' is required: list the workflows to run, "
        "e.g. [{workflow: flows/import.yaml}]"
    ]


def test_not_a_mapping_and_unsafe_yaml_are_refused() -> None:
    assert problems("- a\n- b\n") == [
        "job.yaml:1:1: a job-run file must be a mapping with a name and a list of workflows"
    ]
    [alias] = problems("name: &n x\nworkflows: [{workflow: *n}]\n")
    assert "anchors" in alias and alias.startswith("job.yaml:1:7:")
    [date] = problems("name: x\nworkflows: [{workflow: a, input: {day: 2026-11-21}}]\n")
    assert date.startswith("job.yaml:2:40:") and 'quote it: "2026-11-21"' in date


def test_an_unreadable_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_job_file(tmp_path / "missing.yaml")
    [problem] = caught.value.problems
    assert problem.format().startswith(f"{tmp_path / 'missing.yaml'}: cannot read the file")

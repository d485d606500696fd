"""Requests are checked when built: an InvalidInputError names the field."""

from __future__ import annotations

import pytest

from flowledger.app import (
    CancelExecution,
    CancelJobRun,
    FollowEvents,
    InvalidInputError,
    ListEvents,
    ListExecutions,
    PushWorkflows,
    RerunExecution,
    StartExecution,
)
from flowledger.errors import InputError


@pytest.mark.parametrize(
    ("build", "path", "words"),
    [
        (lambda: ListExecutions(limit=0), ("limit",), "must be at least 1, not 0"),
        (lambda: ListExecutions(limit=1001), ("limit",), "must be at most 1000, not 1001"),
        (
            lambda: ListExecutions(status="Sleeping"),
            ("status",),
            # The same order every time (a set's order changed from process to process).
            'unknown status "Sleeping"; use one of NotStarted, InProgress, AwaitingUserInput,',
        ),
        (lambda: StartExecution(workflow="x", input=[1]), ("input",), "must be a JSON object"),
        (lambda: StartExecution(workflow=" "), ("workflow",), "name a workflow"),
        (lambda: RerunExecution(id="e", from_step="s", version="newest"), ("version",), "pinned"),
        (lambda: CancelExecution(id=""), ("id",), "at least 1 character"),
        (lambda: PushWorkflows(), ("files",), "at least one definition"),
        (lambda: ListExecutions(color="red"), ("color",), "is not a known field"),
        # pydantic read true as 1: "version": true in a body started version 1.
        (
            lambda: StartExecution(workflow="x", version=True),
            ("version",),
            'a version number (an integer) or "latest" (the pushed version), not true',
        ),
        (lambda: ListExecutions(limit=False), ("limit",), "must be a number, not false"),
        (
            lambda: StartExecution(workflow="x", input={"a": ["ok", "\x00"]}),
            ("input", "a", 1),
            "NUL",
        ),
        (lambda: StartExecution(workflow="x", input={"k\x00": 1}), ("input", "k\x00"), "NUL"),
        (lambda: StartExecution(workflow="x", correlation_id="\x00"), ("correlationId",), "NUL"),
        (
            lambda: PushWorkflows(texts=[{"text": "a", "file": "b\x00"}]),
            ("texts", 0, "file"),
            "NUL",
        ),
        # Filled by Python names, named as JSON names them (what the HTTP API sends).
        (
            lambda: StartExecution(workflow="x", correlation_id="c" * 201),
            ("correlationId",),
            "correlationId: must have at most 200",
        ),
        (lambda: ListExecutions(created_after="soon"), ("createdAfter",), "createdAfter: "),
        (
            lambda: StartExecution(workflow="x", input={"snake_key": 1}, version=0),
            ("version",),
            "version: must be at least 1",
        ),
    ],
)
def test_a_bad_field_is_an_invalid_input_error_with_its_path(
    build: object, path: tuple[str, ...], words: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field_path == path
    assert words in str(caught.value)
    assert isinstance(caught.value, InputError)  # the CLI exits 2, the API answers 422


def test_a_cancel_s_reason_has_at_most_a_thousand_characters() -> None:
    """A cancel's reason had no limit, yet it is copied into the execution's error and
    events, each stopped step's and each child's cancel: the application's requests
    refuse a longer one, so every face (CLI, API, web) does alike."""
    for build in (CancelExecution, CancelJobRun):
        assert len(build(id="e", reason="r" * 1_000).reason) == 1_000
        with pytest.raises(InvalidInputError) as caught:
            build(id="e", reason="r" * 1_001)
        assert caught.value.field_path == ("reason",)
        assert str(caught.value) == "reason: must have at most 1,000 characters, not 1,001"


def test_json_names_and_nested_paths() -> None:
    request = ListExecutions.from_json({"correlationId": "c-1", "parentId": "p", "limit": 5})
    assert (request.correlation_id, request.parent_id, request.limit) == ("c-1", "p", 5)
    with pytest.raises(InvalidInputError) as caught:
        PushWorkflows.from_json({"texts": [{"text": "x"}, {"file": "y"}]})
    assert caught.value.field_path == ("texts", 1, "text")
    assert str(caught.value) == "texts[1].text: is required"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="time zone") as caught:
        ListExecutions.from_json({"createdAfter": "2026-11-22T10:00:00"})
    assert caught.value.field_path == ("createdAfter",)  # the name the caller used


def test_a_compiled_workflow_is_taken_as_it_is() -> None:
    """Checked by its type only: no schema of the dataclass tree under it is built (that
    was 10 ms of a command's first start), and the very object reaches the engine."""
    from flowledger import Engine
    from flowledger.app import RunExecution

    compiled = Engine("sqlite://").load_text(
        "name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"
    )
    for request in (StartExecution(workflow=compiled), RunExecution(workflow=compiled)):
        assert request.workflow is compiled
        assert "dataclass" not in repr(type(request).__pydantic_core_schema__)
    with pytest.raises(InvalidInputError) as refused:
        RunExecution(workflow=3)
    assert refused.value.field_path == ("workflow",)
    assert str(refused.value) == "workflow: must be text or a CompiledWorkflow, not 3"


def test_sequence_numbers_past_a_64_bit_integer_are_refused_in_words() -> None:
    """``after=9223372036854775808`` reached SQLite and failed there (500, internal error)."""
    for request in (ListEvents, FollowEvents):
        with pytest.raises(InvalidInputError) as refused:
            request(id="x", after_seq=2**63)
        assert str(refused.value) == (
            "after: must be at most 9223372036854775807, not 9223372036854775808"
        )
    # Past the largest seq a database stores: a position after every event (app.models).
    assert ListEvents(id="x", after_seq=2**63 - 1).after_seq == 2**31 - 1

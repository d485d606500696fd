"""A missing value names the full path and what exists instead."""

from __future__ import annotations

import pytest

from flowledger.errors import TemplateReferenceError
from tests.templates.support import render


def missing(source: str) -> TemplateReferenceError:
    with pytest.raises(TemplateReferenceError) as caught:
        render(source)
    assert caught.value.source == source
    return caught.value


def test_missing_field_lists_the_fields_that_exist() -> None:
    error = missing("{{ steps.query_leads.output.totalCont }}")
    assert error.message == (
        "steps.query_leads.output.totalCont does not exist: steps.query_leads.output "
        "has no field 'totalCont' (fields: entities, hasMore, totalCount)"
    )


def test_missing_top_level_field() -> None:
    assert missing("{{ variables.totl }}").message == (
        "variables.totl does not exist (variables: label, total)"
    )


def test_missing_step_in_text_template() -> None:
    """The message names the whole path the template reads (SPEC 3), then where it
    breaks off."""
    assert missing("n={{ steps.ghost.output }}!").message.startswith(
        "steps.ghost.output does not exist: steps has no field 'ghost' (fields: fetch, query_leads)"
    )


def test_index_out_of_range_says_how_many_items() -> None:
    assert missing("{{ steps.query_leads.output.entities[5].id }}").message == (
        "steps.query_leads.output.entities[5].id does not exist: "
        "steps.query_leads.output.entities has 3 items"
    )


def test_reading_a_field_of_a_scalar() -> None:
    assert missing("{{ variables.total.value }}").message == (
        "variables.total.value does not exist: variables.total is a number, not an object"
    )


def test_unknown_root_name_lists_available_names() -> None:
    message = missing("{{ config }}").message
    assert message.startswith("config does not exist (available names: ")
    assert "steps" in message
    assert "variables" in message


def test_missing_value_used_in_a_condition_or_arithmetic() -> None:
    assert missing("{{ variables.totl > 1 }}").message.startswith("variables.totl does not exist")
    assert missing("{{ 1 + steps.fetch.output.nope }}").message.startswith(
        "steps.fetch.output.nope does not exist"
    )


def test_dynamic_reads_fall_back_to_the_evaluator_message() -> None:
    message = missing("{{ steps[variables.label].output }}").message
    assert message.startswith('template error in "{{ steps[variables.label].output }}":')
    assert "Leads" in message


def test_missing_value_is_never_an_empty_string() -> None:
    assert missing("Hello {{ input.name }}").message == "input.name does not exist (input: region)"

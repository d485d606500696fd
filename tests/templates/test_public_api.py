"""The names other modules import from flowledger.templates."""

from __future__ import annotations

import flowledger.templates as templates


def test_public_names_are_pinned() -> None:
    assert sorted(templates.__all__) == [
        "Reference",
        "Template",
        "TemplateEngine",
        "TemplateLimits",
        "TemplatedValue",
        "contains_template",
    ]


def test_default_limits() -> None:
    limits = templates.TemplateLimits()
    assert (
        limits.max_string_length,
        limits.max_collection_length,
        limits.max_range,
        limits.max_integer_bits,
    ) == (1_048_576, 100_000, 10_000, 4_096)

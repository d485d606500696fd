"""Values checked against a JSON Schema: every problem with its field path, in field
order, a bounded number of them, one message."""

from __future__ import annotations

import pytest

from flowledger.errors import InputError, InvalidInputError
from flowledger.schema_check import (
    backtracking_patterns,
    check_against_schema,
    problem_lines,
    schema_problem,
    schema_problems,
    validator_for,
)

ITEMS = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "items": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["name"],
}


def test_each_problem_has_its_path_under_the_root_in_field_order() -> None:
    problems, total = schema_problems(
        validator_for(ITEMS), {"items": [1, "two", 3, "four"]}, "input"
    )
    assert total == 3
    assert problems == [
        (("input",), "'name' is a required property"),
        (("input", "items", 1), "'two' is not of type 'integer'"),
        (("input", "items", 3), "'four' is not of type 'integer'"),
    ]


def test_the_error_says_every_problem_and_carries_their_paths() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_against_schema(validator_for(ITEMS), {"name": 1}, "data", "the data is wrong")
    assert str(caught.value) == "the data is wrong: data.name: 1 is not of type 'string'"
    assert caught.value.field_path == ()
    assert caught.value.problems == ((("data", "name"), "1 is not of type 'string'"),)
    assert isinstance(caught.value, InputError)  # what callers that skip a bad input catch


def test_a_valid_value_passes() -> None:
    check_against_schema(validator_for(ITEMS), {"name": "x", "items": [1]}, "input", "no")
    assert problem_lines(validator_for(ITEMS), {"name": "x"}, "data") == []


def test_many_problems_are_cut_with_a_count() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    with pytest.raises(InvalidInputError) as caught:
        check_against_schema(validator_for(schema), ["x"] * 1000, "input", "bad", limit=3)
    assert len(caught.value.problems) == 3
    assert str(caught.value).endswith("input[2]: 'x' is not of type 'integer'; and 997 more")


def test_formats_are_checked_only_when_asked() -> None:
    schema = {"type": "string", "format": "date"}
    assert problem_lines(validator_for(schema), "not a date", "v") == []
    assert problem_lines(validator_for(schema, formats=True), "not a date", "v") == [
        "v: 'not a date' is not a 'date'"
    ]


@pytest.mark.timeout(120)
def test_patterns_take_time_linear_in_the_text() -> None:
    """A sent value cannot make a schema's pattern backtrack: with Python's re this check
    takes about 2**40 steps (hours); with RE2 it is immediate. No clock is read: a
    regression hangs until this test's timeout, far above what RE2 needs on any machine."""
    schema = {
        "type": "object",
        "properties": {"email": {"type": "string", "pattern": "^([a-z0-9]+)+@x$"}},
        "patternProperties": {"^(a+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    text = "a" * 40 + "!"
    problems, total = schema_problems(
        validator_for(schema), {"email": text, text: 1, "a" * 40: "no"}, "input"
    )
    assert total == 3
    assert [path for path, _ in problems] == [("input",), ("input", "a" * 40), ("input", "email")]
    assert "does not match '^([a-z0-9]+)+@x$'" in dict(problems)[("input", "email")]


def test_unevaluated_properties_find_pattern_keys_in_time_linear_in_the_key() -> None:
    """jsonschema's own unevaluatedProperties matched patternProperties with Python's re:
    a 40-character key against ``^(a+)+$`` took about 2**40 steps. As above, no clock
    is read: a regression hangs until the test's timeout."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "patternProperties": {"^(a+)+$": {"type": "integer"}, "^n\\d+$": {}},
        "allOf": [{"properties": {"kept": {}}}],
        "unevaluatedProperties": False,
    }
    key = "a" * 40 + "!"
    value = {"name": "x", "a" * 40: 1, "kept": 1, "n12": 1, key: 1, "n\u0663": 1}
    problems, total = schema_problems(validator_for(schema), value, "input")
    assert total == 1
    # RE2's \d is ASCII's, as patternProperties itself reads it: n + Arabic-Indic 3 is
    # not one of its keys (Python's re said it was)
    assert problems == [
        (
            ("input",),
            f"Unevaluated properties are not allowed ('{key}', 'n\u0663' were unexpected)",
        )
    ]
    typed = {**schema, "unevaluatedProperties": {"type": "string"}}
    problems, _ = schema_problems(validator_for(typed), {"other": 5, "fine": "y"}, "input")
    assert problems == [
        (
            ("input",),
            "Unevaluated properties are not valid under the given schema ('other' was "
            "unevaluated and invalid)",
        )
    ]


def test_a_new_schema_may_not_use_a_pattern_that_backtracks() -> None:
    """Under Python's re one 27-character value held a server for seconds (and ``$``
    took a trailing newline): a new schema is refused such a pattern, located."""
    schema = {
        "type": "object",
        "properties": {"u": {"type": "string", "pattern": "^(?=[a-z])(a+)+$"}},
        "patternProperties": {r"^(ab)\1$": {}},
    }
    found = backtracking_patterns(schema)
    assert [where for where, _ in found] == [
        ("patternProperties", r"^(ab)\1$"),
        ("properties", "u", "pattern"),
    ]  # every one, in document order
    assert all("needs backtracking" in said for _, said in found)
    plain = {"type": "object", "properties": {"pattern": {"type": "string", "pattern": "^a+$"}}}
    assert backtracking_patterns(plain) == []  # a property named "pattern" is no pattern
    assert backtracking_patterns({"type": "string", "pattern": "("}) == []  # no regex at all


def test_a_stored_pattern_re2_cannot_run_still_checks() -> None:
    """Lookaround and backreferences are not linear by nature: Python's re checks them
    for a schema stored before such patterns were refused."""
    schema = {"type": "string", "pattern": "^(?=.*[A-Z]).{8,}$"}
    assert schema_problems(validator_for(schema), "Longenough", "v")[1] == 0
    assert schema_problems(validator_for(schema), "longenough", "v")[1] == 1
    doubled = {"type": "string", "pattern": r"^(ab)\1$"}
    assert schema_problems(validator_for(doubled), "abab", "v")[1] == 0


@pytest.mark.parametrize(
    "reference",
    ["http://127.0.0.1:9/s.json", "file:///etc/hostname", "other.json#/a", "//evil/x"],
)
def test_a_reference_out_of_the_schema_is_refused(reference: str) -> None:
    """jsonschema fetched such references (URL or file) while validating: anyone who
    wrote a schema had the engine open internal URLs past the egress guard."""
    schema = {"type": "object", "properties": {"a": {"$ref": reference}}}
    found = schema_problem(schema)
    assert found is not None
    assert found[0] == ("properties", "a", "$ref") and "refers out of the schema" in found[1]
    local = {"$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s"}}}
    assert schema_problem(local) is None
    assert problem_lines(validator_for(local), {"a": 5}, "data") == [
        "data.a: 5 is not of type 'string'"
    ]


def test_a_stored_schema_with_such_a_reference_fetches_nothing() -> None:
    """One stored before the refusal: validating by it fails in words, and no request
    leaves the process."""
    import http.server
    import threading

    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "string"}')

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/s.json"
        validator = validator_for({"properties": {"a": {"$ref": url}}})
        with pytest.raises(InvalidInputError, match="cannot be followed"):
            check_against_schema(validator, {"a": 5}, "input", "the input")
    finally:
        server.shutdown()
        server.server_close()
    assert asked == []


def test_a_long_key_is_quoted_cut_in_the_message() -> None:
    """A 30,000-character field name came back whole in the error."""
    key = "x" * 30_000
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        schema = {"type": "object", "properties": {"a": {}}, keyword: False}
        [(_, message)], _ = schema_problems(validator_for(schema), {key: 1}, "payload")
        assert len(message) < 140 and f"'{'x' * 55}...'" in message, message

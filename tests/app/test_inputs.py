"""One set of rules for every JSON value that comes in (app.inputs): strict numbers,
bounded size, depth and integers, valid Unicode, UTF-8 files; each refusal one line.

Property tests throw generated JSON, surrogates, NULs, markup, deep structures and huge
numbers at the parsers: the only outcomes are a value or an InputError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowledger.app.inputs import (
    check_json_value,
    malformed_json_error,
    parse_json,
    read_json_file,
    read_schema_file,
)
from flowledger.app.models import ListEntities
from flowledger.config import Limits
from flowledger.errors import InputError, InvalidInputError, TooLargeError

SMALL = Limits(max_input=8192, max_json_depth=8)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1e999}', "the number 1e999 is too large"),
        ('{"a": ' + "9" * 5000 + "}", "an integer has 5,000 digits"),
        ('{"a": "\\ud800"}', "--input.a: holds a lone surrogate (\\ud800)"),
        ('{"\\udfff": 1}', "holds a lone surrogate (\\udfff)"),
        ("[" * 20 + "]" * 20, "nests deeper than the limit of 8 levels"),
        ('{"a": 1', "is not valid JSON (column 8)"),
        ('{"a": "x\x00"}', "NUL character"),
        ('{"a": 1, "a": 2}', 'the key "a" appears twice in one object'),
        ('[{"b": {"c": 1, "c": 1}}]', 'the key "c" appears twice'),
    ],
)
def test_bad_json_is_one_line_naming_what(text: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_json(text, "--input", SMALL)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_body_with_a_key_twice_or_not_utf8_is_refused_and_other_text_left_to_its_parser() -> None:
    refused = malformed_json_error(b'{"input": {"n": 1}, "input": {"n": 2}}')
    assert refused is not None
    assert (
        str(refused)
        == 'the request body is not valid JSON: the key "input" appears twice in one object'
    )
    assert malformed_json_error(b'{"a": {"x": 1}, "b": {"x": 1}}') is None  # other objects
    assert malformed_json_error(b'{"a": 1,') is None  # not JSON: the route says why
    # Not UTF-8: the HTTP face's parser said only "There was an error parsing the body".
    # UTF-16 (with its BOM) too, which json.loads guesses from bytes: it was taken.
    utf16 = '{"n": "é"}'.encode("utf-16")
    for data, at in ((b'\xff{"a": 1}', "byte 0xff at position 0"), (b'{"n":"\xe9"}', "byte 0xe9 at position 6"), (utf16, "byte 0xff at position 0")):  # fmt: skip
        assert str(malformed_json_error(data)) == (
            f"the request body is not valid JSON: it is not UTF-8 text ({at}); send JSON as UTF-8"
        )
    # Python's parser takes these as numbers; JSON has none of them.
    for constant in ("NaN", "Infinity", "-Infinity"):
        refused = malformed_json_error(b'{"input": {"a": [1, %s]}}' % constant.encode())
        assert str(refused) == (
            f"the request body is not valid JSON: {constant} is not a JSON number"
        )


def test_a_large_input_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    with pytest.raises(TooLargeError, match="larger than the limit of 8 KiB"):
        parse_json('"' + "x" * 9000 + '"', "--input", SMALL)
    big = tmp_path / "big.json"
    with big.open("wb") as file:  # sparse: refused from its size, never read
        file.truncate(50 * 1024 * 1024)
    with pytest.raises(TooLargeError, match=r"input file .*big.json is larger"):
        read_json_file(str(big), SMALL)


def test_files_must_be_utf8_and_say_where(tmp_path: Path) -> None:
    binary = tmp_path / "input.json"
    binary.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(InputError, match=r"input.json:1: the input file is not UTF-8 text"):
        read_json_file(str(binary), SMALL)
    schema = tmp_path / "schema.yaml"
    schema.write_bytes(b"type: object\n\x80\x81")
    with pytest.raises(InputError, match=r"schema.yaml:2: the schema file is not UTF-8"):
        read_schema_file(str(schema), SMALL)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "a": NaN\n}', encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.json: invalid JSON: NaN"):
        read_json_file(str(broken), SMALL)


def test_schema_files_go_through_the_safe_loader(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match="anchors"):
        read_schema_file(str(bomb))


def test_entity_filters_and_offsets_stay_within_64_bits() -> None:
    with pytest.raises(InvalidInputError, match=r"filter.n: too large: .* at most 9,223,372,036,") as refused:  # fmt: skip
        ListEntities(entity_type="t", filter={"n": 2**63})
    assert refused.value.field_path == ("filter", "n")
    with pytest.raises(InputError, match="must be at most 9223372036854775807"):
        ListEntities(entity_type="t", offset=2**63)
    assert ListEntities(entity_type="t", filter={"n": 2**63 - 1}, offset=2**63 - 1)


def test_values_that_arrive_parsed_follow_the_same_rules() -> None:
    """Each refusal names its field (the API's ``details.field_path``): a lone surrogate
    was ``input.name holds a lone surrogate`` with an empty path."""
    for value, path, message in (
        ({"a": float("nan")}, ("input", "a"), "input.a: nan is not a JSON number"),
        ({"a": [1, float("inf")]}, ("input", "a", 1), "input.a[1]: inf is not a JSON number"),
        ({"a": "\ud800"}, ("input", "a"), "input.a: holds a lone surrogate (\\ud800); send valid Unicode"),
        ({"\udfff": 1}, ("input", "\udfff"), "input.\udfff: holds a lone surrogate (\\udfff); send valid Unicode"),
    ):  # fmt: skip
        with pytest.raises(InvalidInputError) as refused:
            check_json_value(value, "input")
        assert (refused.value.field_path, str(refused.value)) == (path, message)
    check_json_value({"a": [1, 2.5, "ünïcödé ✓", None, True, {"b": "[/]"}]}, "input")


def _outcome(text: str, limits: Limits) -> tuple[Any, str | None]:
    """The parsed value, or the refusal's message: never any other exception."""
    try:
        return parse_json(text, "--input", limits), None
    except InputError as exc:
        return None, str(exc)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_value_or_one_input_error(text: str) -> None:
    value, error = _outcome(text, SMALL)
    if error is not None:
        assert "\n" not in error
    else:
        json.dumps(value, allow_nan=False).encode("utf-8")  # storable as strict UTF-8 JSON


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_generated_json_is_a_value_or_one_input_error(value: Any) -> None:
    text = json.dumps(value)  # may spell NaN, Infinity and surrogates
    parsed, error = _outcome(text, SMALL)
    if error is not None:
        assert "\n" not in error
    else:
        assert json.dumps(parsed, allow_nan=False) == json.dumps(value, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=3000), st.sampled_from("[{"))
def test_deep_structures_are_refused_without_recursion(depth: int, opener: str) -> None:
    closer = {"[": "]", "{": "}"}[opener]
    text = (opener if opener == "[" else '{"a":') * depth + "1" + closer * depth
    _, error = _outcome(text, Limits(max_json_depth=64))
    assert error is None or "nests deeper" in error


def test_an_endless_file_is_read_no_further_than_the_limit() -> None:
    with pytest.raises(TooLargeError, match="/dev/zero is larger than the limit"):
        read_json_file("/dev/zero", SMALL)
